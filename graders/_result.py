"""What every grader returns: a verdict, a fraction of the points, feedback for the student."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from pydantic import JsonValue

from graders._storable import MAX_FEEDBACK_CHARS, storable_details, storable_fraction, storable_text

# A recursive JSON alias that pydantic can validate (a hand-written one recurses forever).
JSONValue: TypeAlias = JsonValue


class Verdict(StrEnum):
    CORRECT = "correct"
    PARTIAL = "partial"
    INCORRECT = "incorrect"
    # The answer could not be graded (malformed, out of range); it costs the student nothing.
    INVALID = "invalid"
    PENDING_MANUAL = "pending_manual"
    # The grader itself failed; staff must look, the student is not blamed.
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class PublicView:
    """What a student sees of a result while its hidden checks are not released.

    `fraction` is what the public checks earned and `max_fraction` their share, both as fractions
    of the question's points; `feedback` is the public checks' feedback only."""

    fraction: float
    max_fraction: float
    feedback: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", storable_fraction(self.fraction))
        object.__setattr__(self, "max_fraction", storable_fraction(self.max_fraction))
        object.__setattr__(self, "feedback", storable_text(self.feedback, MAX_FEEDBACK_CHARS))
        if self.fraction > self.max_fraction:
            raise ValueError(f"public fraction {self.fraction} exceeds the public share {self.max_fraction}")

    def as_json(self) -> dict[str, JSONValue]:
        """How it is stored (question_results.public_view)."""
        return {"fraction": self.fraction, "max_fraction": self.max_fraction, "feedback": self.feedback}


@dataclass(frozen=True, slots=True)
class GradeResult:
    """Normalised when built: feedback and details quote student code and sandbox output, and must
    reach the database and a staff view whatever the student sent (graders/_storable.py)."""

    verdict: Verdict
    fraction: float
    feedback: str
    # Staff-only detail (expected values, diagnostics). Never shown to students.
    details: dict[str, JSONValue] = field(default_factory=dict)
    # Set when some checks are hidden until the grades are released; None: nothing is hidden.
    public_view: PublicView | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", storable_fraction(self.fraction))
        object.__setattr__(self, "feedback", storable_text(self.feedback, MAX_FEEDBACK_CHARS))
        object.__setattr__(self, "details", storable_details(self.details))

    @classmethod
    def from_fraction(
        cls, fraction: float, feedback: str, details: dict[str, JSONValue] | None = None
    ) -> GradeResult:
        """Correct at 1, incorrect at 0, partial in between; a NaN or an infinity
        is refused (ValueError): it is a grader's bug, never a score."""
        if not math.isfinite(fraction):
            raise ValueError(f"fraction must be finite, got {fraction}")
        if fraction >= 1.0:
            verdict = Verdict.CORRECT
        elif fraction <= 0.0:
            verdict = Verdict.INCORRECT
        else:
            verdict = Verdict.PARTIAL
        return cls(verdict, min(max(fraction, 0.0), 1.0), feedback, details or {})

    @classmethod
    def invalid(cls, feedback: str, details: dict[str, JSONValue] | None = None) -> GradeResult:
        return cls(Verdict.INVALID, 0.0, feedback, details or {})
