"""Grading as the other domains see it: enqueue a submission, grade its answers with the graders
of its assignment version."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from graders import GradeResult, JSONValue, Verdict
from service.assignments.snapshots import QuestionSnapshot, VersionSnapshot
from service.config import Settings
from service.db import notify_jobs_after_commit
from service.grading import repository
from service.models import GradingJob, Queue, Submission

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuestionOutcome:
    question: QuestionSnapshot
    result: GradeResult

    @property
    def score(self) -> float:
        return round(self.result.fraction * self.question.points, 6)


def enqueue(
    session: Session, settings: Settings, submission: Submission, snapshot: VersionSnapshot
) -> GradingJob:
    """Create the submission's grading job in the caller's transaction; the executor hears of it
    only once that transaction commits (a job announced before its row exists would be lost)."""
    job = repository.add_job(
        session, submission, snapshot.queue, settings.max_attempts, submission.created_at
    )
    session.flush()
    notify_jobs_after_commit(session, [job.id])
    return job


def grade_answer(
    settings: Settings,
    snapshot: VersionSnapshot,
    question: QuestionSnapshot,
    user_id: int,
    raw_answer: object,
) -> GradeResult:
    """Grade one answer; a grader that raises yields an `error` verdict, never a lost job."""
    seed = snapshot.variant_seed(settings.secret_key, question.key, user_id)
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
