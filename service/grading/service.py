"""Grading one submission's answers with the graders of its assignment version."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from graders import GradeResult, JSONValue, Verdict
from service.assignments.service import variant_seed
from service.assignments.snapshots import QuestionSnapshot, VersionSnapshot
from service.config import Settings
from service.models import Queue

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
    context = replace(
        snapshot.context(seed), sandbox_mode=settings.sandbox, device=device_for(settings, question)
    )
    try:
        return question.grader.grade_raw_answer(question.config, raw_answer, context)
    except Exception as error:
        logger.exception("grader %s failed on question %s", question.kind, question.key)
        details: dict[str, JSONValue] = {"exception": repr(error)[:2000]}
        return GradeResult(
            Verdict.ERROR, 0.0, "The grader failed on this answer; staff have been told.", details
        )


def grade_submission(
    settings: Settings,
    snapshot: VersionSnapshot,
    user_id: int,
    answers: Mapping[str, Any],
    files: Mapping[str, bytes] | None = None,
) -> list[QuestionOutcome]:
    """Grade every answered question; an uploaded file's text goes to its grader as `content`."""
    outcomes = []
    for question in snapshot.questions:
        if question.key in answers:
            answer = answers[question.key]
            upload = (files or {}).get(question.key)
            if upload is not None and isinstance(answer, dict):
                answer = answer | {"content": upload.decode("utf-8", errors="replace")}
            result = grade_answer(settings, snapshot, question, user_id, answer)
            outcomes.append(QuestionOutcome(question, result))
    return outcomes


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def device_for(settings: Settings, question: QuestionSnapshot) -> str:
    """Where a question's student code runs: cuda for a gpu question on a GPU worker, else cpu
    (a CPU worker only gets gpu jobs when AUTOGRADE_GPU_FALLBACK=cpu)."""
    return "cuda" if question.resource_class == Queue.GPU and cuda_available() else "cpu"
