"""Every statement about grading jobs and results. Claims and writes are fenced by the attempt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.orm import Session

from service.models import GradingJob, JobStatus, QuestionResult, Queue, Submission, SubmissionFile


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: int
    submission_id: uuid.UUID
    attempt: int
    # A job with an uploaded file (a notebook): seconds to minutes of sandbox time, not milliseconds.
    heavy: bool = False


# An arbitrary constant of this application for pg_try_advisory_xact_lock.
SWEEPER_LOCK_KEY = 0x6175746F6772  # "autogr"


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        GradingJob.status == JobStatus.QUEUED,
        and_(
            GradingJob.status == JobStatus.RUNNING,
            GradingJob.lease_expires_at < now,
            GradingJob.attempt < GradingJob.max_attempts,
        ),
    )


def add_job(
    session: Session, submission: Submission, queue: Queue, max_attempts: int, now: datetime
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


def _has_upload() -> ColumnElement[bool]:
    """Heavy jobs are those with an uploaded file: only notebook questions take one."""
    return exists(select(SubmissionFile.id).where(SubmissionFile.submission_id == GradingJob.submission_id))


def claim_jobs(
    session: Session,
    worker_id: str,
    queues: Sequence[Queue],
    limit: int,
    now: datetime,
    lease: timedelta,
    *,
    heavy: bool,
) -> list[ClaimedJob]:
    """Claim up to `limit` light (or heavy) jobs that are queued or whose lease expired, in one
    statement.

    The inner SELECT skips rows other workers hold (Postgres FOR UPDATE SKIP LOCKED); the outer
    WHERE re-checks claimability, so even without row locks (SQLite) a job goes to one claimer.
    """
    candidates = (
        select(GradingJob.id)
        .where(
            GradingJob.queue.in_(list(queues)),
            _claimable(now),
            _has_upload() if heavy else ~_has_upload(),
        )
        .order_by(GradingJob.id)
        .limit(limit)
    )
    claimed = _claim(session, candidates, worker_id, now, lease, heavy=heavy)
    return sorted(claimed, key=lambda job: job.job_id)


def claim_job(
    session: Session, job_id: int, worker_id: str, now: datetime, lease: timedelta
) -> ClaimedJob | None:
    """Claim one given job (a Celery message names it) if it is queued or its lease expired.

    The same claim as claim_jobs, for one id: a second delivery of the message finds the job held
    (or done) and claims nothing.
    """
    candidates = select(GradingJob.id).where(GradingJob.id == job_id, _claimable(now))
    claimed = _claim(session, candidates, worker_id, now, lease)
    return claimed[0] if claimed else None


def _claim(
    session: Session,
    candidates: Select[int],
    worker_id: str,
    now: datetime,
    lease: timedelta,
    *,
    heavy: bool = False,
) -> list[ClaimedJob]:
    """Lease the candidate jobs to this worker as their next attempt.

    The candidates are a CTE, evaluated once: as an IN subquery PostgreSQL may rescan them per row,
    and each rescan skips the rows this statement just updated, leasing more than `limit` jobs.
    """
    locked = candidates.with_for_update(skip_locked=True).cte("locked")
    statement = (
        update(GradingJob)
        .where(GradingJob.id.in_(select(locked.c.id)), _claimable(now))
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
    return [ClaimedJob(row[0], row[1], row[2], heavy) for row in session.execute(statement)]


def requeue_expired(session: Session, now: datetime) -> int:
    """Jobs whose worker let the lease run out (and that have attempts left) go back to `queued`.

    The attempt number stays: the next claim increments it, so the lost worker's late write is fenced.
    """
    result = session.execute(
        update(GradingJob)
        .where(
            GradingJob.status == JobStatus.RUNNING,
            GradingJob.lease_expires_at < now,
            GradingJob.attempt < GradingJob.max_attempts,
        )
        .values(status=JobStatus.QUEUED, lease_owner=None, lease_expires_at=None, enqueued_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def queued_counts(session: Session) -> dict[Queue, int]:
    rows = session.execute(
        select(GradingJob.queue, func.count())
        .where(GradingJob.status == JobStatus.QUEUED)
        .group_by(GradingJob.queue)
    ).all()
    return {Queue(queue): int(count) for queue, count in rows}


def stale_queued_jobs(session: Session, queue: Queue, sent_before: datetime, limit: int) -> list[int]:
    """Queued jobs of a queue whose message was sent before `sent_before` (or never), oldest first."""
    rows = session.scalars(
        select(GradingJob.id)
        .where(
            GradingJob.status == JobStatus.QUEUED,
            GradingJob.queue == queue,
            or_(GradingJob.enqueued_at.is_(None), GradingJob.enqueued_at < sent_before),
        )
        .order_by(GradingJob.id)
        .limit(limit)
    ).all()
    return list(rows)


def mark_sent(session: Session, job_ids: Sequence[int], now: datetime) -> None:
    if job_ids:
        session.execute(
            update(GradingJob)
            .where(GradingJob.id.in_(list(job_ids)), GradingJob.status == JobStatus.QUEUED)
            .values(enqueued_at=now)
            .execution_options(synchronize_session=False)
        )


def queues_of(session: Session, job_ids: Sequence[int]) -> dict[int, Queue]:
    rows = session.execute(
        select(GradingJob.id, GradingJob.queue).where(GradingJob.id.in_(list(job_ids)))
    ).all()
    return {int(job_id): Queue(queue) for job_id, queue in rows}


def try_sweeper_lock(session: Session) -> bool:
    """One sweeper at a time across API processes: a transaction-scoped Postgres advisory lock.

    SQLite serialises writers already (BEGIN IMMEDIATE), so there the lock is the transaction.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(SWEEPER_LOCK_KEY))))


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


def fail_job(session: Session, job: ClaimedJob, now: datetime, reason: str) -> bool:
    """End one claimed job as `error` with its reason for staff, if this attempt still holds it."""
    result = session.execute(
        update(GradingJob)
        .where(
            GradingJob.id == job.job_id,
            GradingJob.attempt == job.attempt,
            GradingJob.status == JobStatus.RUNNING,
        )
        .values(status=JobStatus.ERROR, finished_at=now, lease_expires_at=None, last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


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


def set_submission_scores(session: Session, scores: dict[uuid.UUID, float], now: datetime) -> None:
    if scores:
        session.execute(
            update(Submission),
            [
                {"id": submission_id, "score": score, "graded_at": now}
                for submission_id, score in scores.items()
            ],
        )
