"""Every statement about grading jobs and results. Claims and writes are fenced by the attempt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from service.models import GradingJob, JobStatus, QuestionResult, Submission


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: int
    submission_id: uuid.UUID
    attempt: int


def add_job(
    session: Session, submission: Submission, queue: str, max_attempts: int, now: datetime
) -> GradingJob:
    job = GradingJob(
        submission=submission,
        status=JobStatus.QUEUED,
        queue=queue,
        attempt=0,
        max_attempts=max_attempts,
        created_at=now,
        enqueued_at=now,
    )
    session.add(job)
    return job


def give_up_exhausted(session: Session, now: datetime) -> int:
    """Jobs whose lease ran out after their last allowed attempt end as errors."""
    result = session.execute(
        update(GradingJob)
        .where(
            GradingJob.status == JobStatus.RUNNING,
            GradingJob.lease_expires_at < now,
            GradingJob.attempt >= GradingJob.max_attempts,
        )
        .values(
            status=JobStatus.ERROR,
            finished_at=now,
            last_error="gave up: every attempt ended without a result (worker died or timed out)",
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def claim_jobs(
    session: Session, worker_id: str, queues: Sequence[str], limit: int, now: datetime, lease: timedelta
) -> list[ClaimedJob]:
    """Claim up to `limit` jobs that are queued or whose lease expired, in one statement.

    The inner SELECT skips rows other workers hold (Postgres FOR UPDATE SKIP LOCKED); the outer
    WHERE re-checks claimability, so even without row locks (SQLite) a job goes to one claimer.
    """
    claimable = or_(
        GradingJob.status == JobStatus.QUEUED,
        and_(
            GradingJob.status == JobStatus.RUNNING,
            GradingJob.lease_expires_at < now,
            GradingJob.attempt < GradingJob.max_attempts,
        ),
    )
    candidates = (
        select(GradingJob.id)
        .where(GradingJob.queue.in_(list(queues)), claimable)
        .order_by(GradingJob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(GradingJob)
        .where(GradingJob.id.in_(candidates), claimable)
        .values(
            status=JobStatus.RUNNING,
            attempt=GradingJob.attempt + 1,
            lease_owner=worker_id,
            lease_expires_at=now + lease,
            started_at=now,
        )
        .returning(GradingJob.id, GradingJob.submission_id, GradingJob.attempt)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(statement).all()
    return sorted((ClaimedJob(row[0], row[1], row[2]) for row in rows), key=lambda job: job.job_id)


def extend_leases(session: Session, jobs: Sequence[ClaimedJob], now: datetime, lease: timedelta) -> None:
    for job in jobs:
        session.execute(
            update(GradingJob)
            .where(
                GradingJob.id == job.job_id,
                GradingJob.attempt == job.attempt,
                GradingJob.status == JobStatus.RUNNING,
            )
            .values(lease_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )


def finish_jobs(session: Session, jobs: Sequence[ClaimedJob], now: datetime) -> set[int]:
    """Mark claimed jobs done in one statement; returns the ids still held (fencing by attempt).

    A job whose attempt moved on was taken over by another worker after this one's lease ran
    out: its results must not be written.
    """
    if not jobs:
        return set()
    held = [(job.job_id, job.attempt) for job in jobs]
    result = session.execute(
        update(GradingJob)
        .where(tuple_(GradingJob.id, GradingJob.attempt).in_(held), GradingJob.status == JobStatus.RUNNING)
        .values(status=JobStatus.DONE, finished_at=now, lease_expires_at=None, last_error=None)
        .returning(GradingJob.id)
        .execution_options(synchronize_session=False)
    )
    return {row[0] for row in result}


def load_submissions(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Submission]:
    rows = session.scalars(select(Submission).where(Submission.id.in_(list(ids)))).all()
    return {row.id: row for row in rows}


def store_results(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(QuestionResult), list(rows))


def set_submission_scores(session: Session, scores: dict[uuid.UUID, float], now: datetime) -> None:
    if scores:
        session.execute(
            update(Submission),
            [
                {"id": submission_id, "score": score, "graded_at": now}
                for submission_id, score in scores.items()
            ],
        )
