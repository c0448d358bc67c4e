from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from service.models import (
    Assignment,
    AssignmentVersion,
    GradingJob,
    JobStatus,
    QuestionResult,
    Submission,
    SubmissionFile,
    User,
)


def add_submission(session: Session, submission: Submission) -> Submission:
    session.add(submission)
    return submission


def newest_submission_times(session: Session, user_id: int, count: int) -> list[datetime]:
    statement = (
        select(Submission.created_at)
        .where(Submission.user_id == user_id)
        .order_by(Submission.created_at.desc())
        .limit(count)
    )
    return list(session.scalars(statement).all())


def add_files(session: Session, files: Sequence[SubmissionFile]) -> None:
    session.add_all(files)


def find_by_idempotency_key(session: Session, user_id: int, key: str) -> Submission | None:
    statement = select(Submission).where(Submission.user_id == user_id, Submission.idempotency_key == key)
    return session.scalars(statement).one_or_none()


def job_of(session: Session, submission_id: uuid.UUID) -> GradingJob:
    return session.scalars(select(GradingJob).where(GradingJob.submission_id == submission_id)).one()


def get_with_context(
    session: Session, submission_id: uuid.UUID
) -> Row[Submission, GradingJob, str, int, str] | None:
    """A submission with its job, the student's username, the course id and the assignment slug."""
    statement = (
        select(Submission, GradingJob, User.username, Assignment.course_id, Assignment.slug)
        .join(GradingJob, GradingJob.submission_id == Submission.id)
        .join(User, User.id == Submission.user_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .where(Submission.id == submission_id)
    )
    return session.execute(statement).one_or_none()


def results_of(session: Session, submission_id: uuid.UUID) -> Sequence[QuestionResult]:
    statement = select(QuestionResult).where(QuestionResult.submission_id == submission_id)
    return session.scalars(statement).all()


def list_for_assignment(
    session: Session, slug: str, user_id: int | None, limit: int, offset: int
) -> Sequence[Row[Submission, JobStatus, str]]:
    """Submissions to an assignment (any version), newest first; one student's if user_id is given."""
    statement = (
        select(Submission, GradingJob.status, User.username)
        .join(GradingJob, GradingJob.submission_id == Submission.id)
        .join(User, User.id == Submission.user_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .where(Assignment.slug == slug)
        .order_by(Submission.created_at.desc(), Submission.id)
        .limit(limit)
        .offset(offset)
    )
    if user_id is not None:
        statement = statement.where(Submission.user_id == user_id)
    return session.execute(statement).all()


def result_of(session: Session, submission_id: uuid.UUID, question_key: str) -> QuestionResult | None:
    statement = select(QuestionResult).where(
        QuestionResult.submission_id == submission_id, QuestionResult.question_key == question_key
    )
    return session.scalars(statement).one_or_none()
