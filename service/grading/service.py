"""Grading as the other domains see it: enqueue a submission, grade its answers with the graders
of its assignment version."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from graders import GradeResult, JSONValue, Verdict
from service.assignments.snapshots import QuestionSnapshot, VersionSnapshot
from service.config import Settings
from service.db import notify_jobs_after_commit
from service.grading import repository
from service.models import GradingJob, JobStatus, Queue, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QuestionOutcome:
    question: QuestionSnapshot
    result: GradeResult

    @property
    def score(self) -> float:
        return round(self.result.fraction * self.question.points, 6)


def enqueue(
    session: Session, settings: Settings, submission_id: uuid.UUID, created_at: datetime, queue: Queue
) -> int:
    """Create the submission's grading job in the caller's transaction and return its id; the
    executor hears of it only once that transaction commits (a job announced before its row exists
    would be lost)."""
    job_id = repository.add_job(session, submission_id, queue, settings.max_attempts, created_at)
    notify_jobs_after_commit(session, [job_id])
    return job_id


def enqueue_regrade(
    session: Session,
    settings: Settings,
    regrade_id: uuid.UUID,
    snapshot: VersionSnapshot,
    question_key: str | None,
    submission_ids: Sequence[uuid.UUID],
) -> list[int]:
    """One job per submission, grading it again against `snapshot` (one question, or all it
    answered) as the submission's next revision; announced after the caller's commit like any job.
    The caller serialises regrades of an assignment, so two cannot take the same revision."""
    question = snapshot.question(question_key) if question_key is not None else None
    queue = question.resource_class if question is not None else snapshot.queue
    now = utcnow()
    revisions = repository.next_revisions(session, submission_ids)
    job_ids = repository.add_regrade_jobs(
        session,
        [
            GradingJob(
                submission_id=submission_id,
                revision=revisions[submission_id],
                regrade_id=regrade_id,
                assignment_version_id=snapshot.id,
                question_key=question_key,
                status=JobStatus.QUEUED,
                queue=queue,
                attempt=0,
                max_attempts=settings.max_attempts,
                created_at=now,
                enqueued_at=now,
            )
            for submission_id in submission_ids
        ],
    )
    notify_jobs_after_commit(session, job_ids)
    return job_ids


def refresh_scores(session: Session, submission_ids: Sequence[uuid.UUID]) -> None:
    """Recompute the submissions' raw totals after a person's grades changed (e.g. cleared)."""
    totals = repository.raw_totals(session, submission_ids)
    if totals:
        repository.set_submission_scores(session, totals, utcnow())


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
    only: str | None = None,
) -> list[QuestionOutcome]:
    """Grade every answered question (or only the question `only`, if answered); an uploaded
    file's text goes to its grader as `content`."""
    outcomes = []
    for question in snapshot.questions:
        if question.key in answers and only in (None, question.key):
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
