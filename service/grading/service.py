"""Grading one submission's answers with the graders of its assignment version."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graders import GradeResult, JSONValue, Verdict
from service.assignments.service import variant_seed
from service.assignments.snapshots import QuestionSnapshot, VersionSnapshot
from service.config import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuestionOutcome:
    question: QuestionSnapshot
    result: GradeResult

    @property
    def score(self) -> float:
        return round(self.result.fraction * self.question.points, 6)


def grade_answer(
    settings: Settings,
    snapshot: VersionSnapshot,
    question: QuestionSnapshot,
    user_id: int,
    raw_answer: object,
) -> GradeResult:
    """Grade one answer; a grader that raises yields an `error` verdict, never a lost job."""
    seed = variant_seed(settings, snapshot.assignment_slug, question.key, user_id)
    try:
        return question.grader.grade_raw_answer(question.config, raw_answer, snapshot.context(seed))
    except Exception as error:
        logger.exception("grader %s failed on question %s", question.kind, question.key)
        details: dict[str, JSONValue] = {"exception": repr(error)[:2000]}
        return GradeResult(
            Verdict.ERROR, 0.0, "The grader failed on this answer; staff have been told.", details
        )


def grade_submission(
    settings: Settings, snapshot: VersionSnapshot, user_id: int, answers: Mapping[str, Any]
) -> list[QuestionOutcome]:
    outcomes = []
    for question in snapshot.questions:
        if question.key in answers:
            result = grade_answer(settings, snapshot, question, user_id, answers[question.key])
            outcomes.append(QuestionOutcome(question, result))
    return outcomes
