"""Every statement about grading jobs and results. Claims and writes are fenced by the attempt."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from graders import Verdict
from service.models import (
    GradeAuditEntry,
    GradingJob,
    JobStatus,
    ManualGrade,
    QuestionResult,
    Queue,
    Regrade,
    Submission,
    SubmissionFile,
)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: int
    submission_id: uuid.UUID
    attempt: int
    # A job with an uploaded file (a notebook): seconds to minutes of sandbox time, not milliseconds.
    heavy: bool = False
    # 1: the submission's first grading; a regrade's job writes the next revision of the results,
    # against its own assignment version (None: the submission's) and maybe one question only.
    revision: int = 1
    assignment_version_id: int | None = None
    question_key: str | None = None
    regrade_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A result row already stored, as the writer of a newer revision needs to see it."""

    id: int
    submission_id: uuid.UUID
    question_key: str
    revision: int
    score: float
    verdict: Verdict
    is_current: bool


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


# Built once: the statement's construction and cache key are not paid per submission.
_JOBS = cast(Table, GradingJob.__table__)
_INSERT_JOB = insert(_JOBS).returning(_JOBS.c.id)


def add_job(
    session: Session, submission_id: uuid.UUID, queue: Queue, max_attempts: int, now: datetime
) -> int:
    """Insert a submission's first grading job (a Core INSERT ... RETURNING: this runs on every
    POST); returns its id."""
    values = {
        "submission_id": submission_id,
        "status": JobStatus.QUEUED,
        "queue": queue,
        "attempt": 0,
        "max_attempts": max_attempts,
        "created_at": now,
        "enqueued_at": now,
    }
    return int(session.execute(_INSERT_JOB, values).scalar_one())


def next_revisions(session: Session, submission_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The revision a new job of each submission takes: one more than its newest job's."""
    rows = session.execute(
        select(GradingJob.submission_id, func.max(GradingJob.revision))
        .where(GradingJob.submission_id.in_(list(submission_ids)))
        .group_by(GradingJob.submission_id)
    ).all()
    newest = {submission_id: int(revision) for submission_id, revision in rows}
    return {submission_id: newest.get(submission_id, 0) + 1 for submission_id in submission_ids}


def add_regrade_jobs(session: Session, jobs: Sequence[GradingJob]) -> list[int]:
    session.add_all(jobs)
    session.flush()
    return [job.id for job in jobs]


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
        .returning(
            GradingJob.id,
            GradingJob.submission_id,
            GradingJob.attempt,
            GradingJob.revision,
            GradingJob.assignment_version_id,
            GradingJob.question_key,
            GradingJob.regrade_id,
        )
        .execution_options(synchronize_session=False)
    )
    return [
        ClaimedJob(row[0], row[1], row[2], heavy, row[3], row[4], row[5], row[6])
        for row in session.execute(statement)
    ]


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


@dataclass(frozen=True, slots=True)
class SubmissionToGrade:
    id: uuid.UUID
    user_id: int
    answers: dict[str, Any]
    assignment_version_id: int


def load_submissions(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, SubmissionToGrade]:
    """What grading reads of each submission, as plain columns (no entities: nothing here changes them)."""
    rows = session.execute(
        select(Submission.id, Submission.user_id, Submission.answers, Submission.assignment_version_id).where(
            Submission.id.in_(list(ids))
        )
    ).all()
    return {row[0]: SubmissionToGrade(row[0], row[1], row[2], row[3]) for row in rows}


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


def requesters_of(session: Session, regrade_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Who started each regrade: the actor of the audit entries its jobs write."""
    if not regrade_ids:
        return {}
    rows = session.execute(
        select(Regrade.id, Regrade.requested_by_user_id).where(Regrade.id.in_(list(regrade_ids)))
    ).all()
    return {row[0]: row[1] for row in rows}


def lock_submissions(session: Session, submission_ids: Sequence[uuid.UUID]) -> None:
    """Serialise the writers of these submissions' results until commit (Postgres row locks, in id
    order so two writers cannot deadlock), so that two revisions written at once cannot both end
    current. SQLite's writers are serialised already."""
    if submission_ids:
        session.execute(
            select(Submission.id)
            .where(Submission.id.in_(sorted(submission_ids)))
            .order_by(Submission.id)
            .with_for_update()
        ).all()


def stored_results(session: Session, submission_ids: Sequence[uuid.UUID]) -> list[StoredResult]:
    """Every revision of these submissions' results (a few rows per question at most)."""
    if not submission_ids:
        return []
    rows = session.execute(
        select(
            QuestionResult.id,
            QuestionResult.submission_id,
            QuestionResult.question_key,
            QuestionResult.revision,
            QuestionResult.score,
            QuestionResult.verdict,
            QuestionResult.is_current,
        ).where(QuestionResult.submission_id.in_(list(submission_ids)))
    ).all()
    return [StoredResult(*row) for row in rows]


def retire_results(session: Session, result_ids: Sequence[int]) -> None:
    """A newer revision took their place: they stay, no longer current."""
    if result_ids:
        session.execute(
            update(QuestionResult)
            .where(QuestionResult.id.in_(list(result_ids)))
            .values(is_current=False)
            .execution_options(synchronize_session=False)
        )


_INSERT_RESULTS = insert(cast(Table, QuestionResult.__table__))


def store_results(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One executemany of Core INSERTs: the rows are plain values, the ORM's bulk path adds only cost."""
    if rows:
        session.execute(_INSERT_RESULTS, list(rows))


def append_audit(session: Session, entries: Sequence[dict[str, Any]]) -> None:
    if entries:
        session.execute(insert(GradeAuditEntry), list(entries))


def manual_scores(
    session: Session, submission_ids: Sequence[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], float]:
    """The TAs' grades of these submissions, per (submission, question)."""
    if not submission_ids:
        return {}
    rows = session.execute(
        select(ManualGrade.submission_id, ManualGrade.question_key, ManualGrade.score).where(
            ManualGrade.submission_id.in_(list(submission_ids))
        )
    ).all()
    return {(submission_id, key): score for submission_id, key, score in rows}


def raw_totals(session: Session, submission_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, float]:
    """Each submission's raw total (docs/grading-policy.md): over its current results, a person's
    grade where there is one, else the automatic score; an ungraded manual answer counts 0."""
    if not submission_ids:
        return {}
    raw = case(
        (ManualGrade.score.is_not(None), ManualGrade.score),
        (QuestionResult.verdict == Verdict.PENDING_MANUAL, 0.0),
        else_=QuestionResult.score,
    )
    rows = session.execute(
        select(QuestionResult.submission_id, func.sum(raw))
        .outerjoin(
            ManualGrade,
            (ManualGrade.submission_id == QuestionResult.submission_id)
            & (ManualGrade.question_key == QuestionResult.question_key),
        )
        .where(QuestionResult.submission_id.in_(list(submission_ids)), QuestionResult.is_current)
        .group_by(QuestionResult.submission_id)
    ).all()
    totals = {submission_id: round(float(total or 0.0), 6) for submission_id, total in rows}
    return {submission_id: totals.get(submission_id, 0.0) for submission_id in submission_ids}


def set_submission_scores(session: Session, scores: dict[uuid.UUID, float], now: datetime) -> None:
    """The ORM's bulk update by primary key, not a Core UPDATE: it also updates the submissions
    already loaded in the session (a TA's grade answers with the new total)."""
    if scores:
        session.execute(
            update(Submission),
            [
                {"id": submission_id, "score": score, "graded_at": now}
                for submission_id, score in scores.items()
            ],
        )


def set_max_scores(session: Session, max_scores: dict[uuid.UUID, float]) -> None:
    """A regrade against a newer version: the submission is now out of that version's points."""
    if max_scores:
        session.execute(
            update(Submission),
            [{"id": submission_id, "max_score": value} for submission_id, value in max_scores.items()],
        )


def close_finished_regrades(session: Session, regrade_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Note when a regrade's last job ended (done or error)."""
    if not regrade_ids:
        return
    unfinished = exists(
        select(GradingJob.id).where(
            GradingJob.regrade_id == Regrade.id,
            GradingJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
    )
    session.execute(
        update(Regrade)
        .where(Regrade.id.in_(list(regrade_ids)), Regrade.finished_at.is_(None), ~unfinished)
        .values(finished_at=now)
        .execution_options(synchronize_session=False)
    )
