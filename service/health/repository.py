"""The statements behind /readyz and /metrics: everything is read from the job and result tables, so
every API process reports the same figures whatever worker machines did the work."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service.models import GradingJob, JobStatus, QuestionResult


def ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


def jobs_by_queue_and_status(session: Session) -> list[tuple[str, str, int, int]]:
    """(queue, status, jobs, attempts summed)."""
    rows = session.execute(
        select(
            GradingJob.queue, GradingJob.status, func.count(), func.coalesce(func.sum(GradingJob.attempt), 0)
        ).group_by(GradingJob.queue, GradingJob.status)
    ).all()
    return [
        (str(queue), JobStatus(status).value, int(count), int(attempts))
        for queue, status, count, attempts in rows
    ]


def finished_job_times(session: Session) -> list[tuple[str, datetime, datetime]]:
    """(grader kind, job created, job finished) for every done job, once per kind it graded."""
    rows = session.execute(
        select(QuestionResult.grader_kind, GradingJob.created_at, GradingJob.finished_at)
        .join(
            GradingJob,
            (GradingJob.submission_id == QuestionResult.submission_id)
            & (GradingJob.revision == QuestionResult.revision),
        )
        .where(GradingJob.status == JobStatus.DONE, GradingJob.finished_at.is_not(None))
        .distinct()
    ).all()
    return [(str(kind), created, finished) for kind, created, finished in rows if finished is not None]


def question_errors_by_kind(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(QuestionResult.grader_kind, func.count())
        .where(QuestionResult.verdict == "error")
        .group_by(QuestionResult.grader_kind)
    ).all()
    return {str(kind): int(count) for kind, count in rows}
