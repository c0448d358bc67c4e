"""Every statement about grading jobs and results. Claims and writes are fenced by the attempt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from service.models import GradingJob, JobStatus, QuestionResult, Submission, SubmissionFile


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: int
    submission_id: uuid.UUID
    attempt: int


def add_job(
    session: Session, submission_id: uuid.UUID, queue: str, max_attempts: int, now: datetime
) -> GradingJob:
    job = GradingJob(
        submission_id=submission_id,
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


def finish_job(session: Session, job: ClaimedJob, now: datetime, error: str | None = None) -> bool:
    """Mark a claimed job finished; False if another attempt has taken it over (fencing)."""
    result = session.execute(
        update(GradingJob)
        .where(
            GradingJob.id == job.job_id,
            GradingJob.attempt == job.attempt,
            GradingJob.status == JobStatus.RUNNING,
        )
        .values(
            status=JobStatus.ERROR if error else JobStatus.DONE,
            finished_at=now,
            lease_expires_at=None,
            last_error=error,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def load_submissions(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Submission]:
    rows = session.scalars(select(Submission).where(Submission.id.in_(list(ids)))).all()
    return {row.id: row for row in rows}


def load_files(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, bytes]]:
    """The uploaded files of these submissions: per submission, per question key, the bytes."""
    rows = session.execute(
        select(SubmissionFile.submission_id, SubmissionFile.question_key, SubmissionFile.content).where(
            SubmissionFile.submission_id.in_(list(ids))
        )
    ).all()
    files: dict[uuid.UUID, dict[str, bytes]] = {}
    for submission_id, key, content in rows:
        files.setdefault(submission_id, {})[key] = content
    return files


def store_results(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(QuestionResult), list(rows))


def set_submission_score(session: Session, submission_id: uuid.UUID, score: float, now: datetime) -> None:
    session.execute(
        update(Submission)
        .where(Submission.id == submission_id)
        .values(score=score, graded_at=now)
        .execution_options(synchronize_session=False)
    )
