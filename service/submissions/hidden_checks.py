"""What a student sees of a result whose hidden checks are not released yet (docs/authoring.md,
"Public and hidden checks"): the public checks' score, verdict and feedback, and that hidden
checks are pending. The one place that turns a stored result into that view, for every read a
student can make (the submission, the list, the history, results.json)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from graders import GradeResult, PublicView, Verdict
from service.models import QuestionResult


@dataclass(frozen=True, slots=True)
class PublicPart:
    """The public checks' part of one result, in the question's points."""

    # The public checks' verdict (their score against their share); None if every check is hidden.
    verdict: Verdict | None
    score: float
    feedback: str
    # The hidden checks' share of the question's points.
    hidden_points: float


def public_part(result: QuestionResult) -> PublicPart | None:
    """The part of the result a student may see before the hidden checks are released; None when
    none of its checks is hidden."""
    if result.public_view is None:
        return None
    view = _stored_view(result.public_view)
    points = result.max_score
    verdict = None
    if view.max_fraction > 0:
        verdict = GradeResult.from_fraction(min(view.fraction / view.max_fraction, 1.0), "").verdict
    return PublicPart(
        verdict=verdict,
        score=round(view.fraction * points, 6),
        feedback=view.feedback,
        hidden_points=round((1 - view.max_fraction) * points, 6),
    )


def _stored_view(stored: object) -> PublicView:
    """The stored view; one that cannot be read shows nothing (it must not fall back to the full
    result, which holds the hidden checks)."""
    if not isinstance(stored, Mapping):
        return PublicView(0.0, 0.0, "")
    try:
        return PublicView(float(stored["fraction"]), float(stored["max_fraction"]), str(stored["feedback"]))
    except (KeyError, TypeError, ValueError):
        return PublicView(0.0, 0.0, "")


def counted_score(result: QuestionResult, person_score: float | None) -> float:
    """What the answer adds to the stored raw total: a person's grade, else the automatic score."""
    return result.score if person_score is None else person_score


def public_total(stored_total: float | None, concealed: Iterable[tuple[float, float]]) -> float | None:
    """A submission's raw total with each concealed answer's counted score (its person's grade or
    automatic score, as in the stored total) replaced by its public score: `concealed` holds
    (counted, public) pairs. The hidden checks' points are thereby left out."""
    concealed = list(concealed)
    if stored_total is None or not concealed:
        return stored_total
    total = stored_total
    for counted, public in concealed:
        total += public - counted
    return round(max(total, 0.0), 6)
