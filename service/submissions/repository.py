from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from graders import Verdict
from service.db import advisory_xact_lock
from service.models import (
    Assignment,
    AssignmentVersion,
    Course,
    GradingJob,
    JobStatus,
    ManualGrade,
    QuestionResult,
    Submission,
    SubmissionFile,
    User,
)


def _original_job() -> ColumnElement[bool]:
    """The submission's first grading job (revision 1): its status is the submission's. A
    regrade's jobs (later revisions) are the regrade's progress, not the submission's."""
    return (GradingJob.submission_id == Submission.id) & (GradingJob.revision == 1)


# Built once: the statement's construction and cache key are not paid per request.
_INSERT_SUBMISSION = insert(cast(Table, Submission.__table__))


def insert_submission(session: Session, values: dict[str, Any]) -> Submission | None:
    """Insert the submission (a Core INSERT: this runs on every POST, and the ORM's unit of work
    cost more than the statement); None once stored. When a concurrent request with the same
    Idempotency-Key stored its own first, insert nothing and return that one instead.

    With a key the insert runs in a savepoint: losing the race undoes only it, and the caller's
    transaction stays usable (no rollback in the service). Without one nothing can collide (the id
    is a fresh UUID), and the savepoint's two round trips are saved on every submission."""
    if values.get("idempotency_key") is None:
        session.execute(_INSERT_SUBMISSION, values)
        return None
    try:
        with session.begin_nested():
            session.execute(_INSERT_SUBMISSION, values)
    except IntegrityError:
        existing = find_by_idempotency_key(session, values["user_id"], values["idempotency_key"])
        if existing is None:
            raise
        return existing
    return None


def newest_submission_times(session: Session, user_id: int, count: int) -> list[datetime]:
    statement = (
        select(Submission.created_at)
        .where(Submission.user_id == user_id)
        .order_by(Submission.created_at.desc())
        .limit(count)
    )
    return list(session.scalars(statement).all())


# The class key of pg_advisory_xact_lock(class, user_id) for a student's uploads.
UPLOAD_LOCK_CLASS = 0x5550  # "UP"


def lock_student_uploads(session: Session, user_id: int) -> None:
    """Serialise one student's concurrent uploads until commit (Postgres), so that two of them
    cannot both fit the quota's last bytes. SQLite's BEGIN IMMEDIATE already does."""
    advisory_xact_lock(session, UPLOAD_LOCK_CLASS, user_id)


def _in_course(statement: Any, course_id: int) -> Any:
    return (
        statement.join(Submission, Submission.id == SubmissionFile.submission_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .where(Assignment.course_id == course_id)
    )


def stored_upload_bytes(session: Session, course_id: int, user_id: int | None) -> int:
    """Bytes of uploaded files still stored in a course (one student's if user_id is given);
    length() reads the stored length, not the bytes."""
    statement = _in_course(select(func.coalesce(func.sum(func.length(SubmissionFile.content)), 0)), course_id)
    if user_id is not None:
        statement = statement.where(Submission.user_id == user_id)
    return int(session.scalar(statement) or 0)


def stored_uploads_of(
    session: Session, course_id: int, user_id: int
) -> Sequence[Row[int, int, str, JobStatus]]:
    """A student's uploads in a course that still hold their bytes: (file id, assignment id,
    question key, job status), newest first."""
    statement = _in_course(
        select(
            SubmissionFile.id,
            AssignmentVersion.assignment_id,
            SubmissionFile.question_key,
            GradingJob.status,
        ),
        course_id,
    ).join(GradingJob, _original_job())
    statement = statement.where(Submission.user_id == user_id, func.length(SubmissionFile.content) > 0)
    newest_first = statement.order_by(SubmissionFile.created_at.desc(), SubmissionFile.id.desc())
    return session.execute(newest_first).all()


def drop_file_contents(session: Session, file_ids: Sequence[int]) -> None:
    """Keep the rows (name, size, SHA-256), drop the bytes."""
    session.execute(
        update(SubmissionFile).where(SubmissionFile.id.in_(file_ids)).values(content=b""),
        execution_options={"synchronize_session": False},
    )


def add_files(session: Session, files: Sequence[SubmissionFile]) -> None:
    session.add_all(files)


def find_by_idempotency_key(session: Session, user_id: int, key: str) -> Submission | None:
    statement = select(Submission).where(Submission.user_id == user_id, Submission.idempotency_key == key)
    return session.scalars(statement).one_or_none()


def job_of(session: Session, submission_id: uuid.UUID) -> GradingJob:
    statement = select(GradingJob).where(GradingJob.submission_id == submission_id, GradingJob.revision == 1)
    return session.scalars(statement).one()


def get_with_context(
    session: Session, submission_id: uuid.UUID
) -> Row[Submission, GradingJob, str, int, str, str] | None:
    """A submission with its job, the student's username, the course (id and slug) and the
    assignment slug."""
    statement = (
        select(Submission, GradingJob, User.username, Assignment.course_id, Course.slug, Assignment.slug)
        .join(GradingJob, _original_job())
        .join(User, User.id == Submission.user_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .join(Course, Course.id == Assignment.course_id)
        .where(Submission.id == submission_id)
    )
    return session.execute(statement).one_or_none()


def results_of(session: Session, submission_id: uuid.UUID) -> Sequence[QuestionResult]:
    """The submission's current results (a regrade's older revisions stay, not current)."""
    statement = select(QuestionResult).where(
        QuestionResult.submission_id == submission_id, QuestionResult.is_current.is_(True)
    )
    return session.scalars(statement).all()


def manual_grades_of(session: Session, submission_id: uuid.UUID) -> dict[str, ManualGrade]:
    """The grades people gave the submission's answers, by question."""
    statement = select(ManualGrade).where(ManualGrade.submission_id == submission_id)
    return {grade.question_key: grade for grade in session.scalars(statement)}


def results_with_hidden_checks(
    session: Session, submission_ids: Sequence[uuid.UUID]
) -> Sequence[Row[QuestionResult, float | None]]:
    """The current results of these submissions that have hidden checks (a public view), each
    with the score of a person's grade of the answer, if any."""
    if not submission_ids:
        return []
    statement = (
        select(QuestionResult, ManualGrade.score)
        .outerjoin(
            ManualGrade,
            (ManualGrade.submission_id == QuestionResult.submission_id)
            & (ManualGrade.question_key == QuestionResult.question_key),
        )
        .where(
            QuestionResult.submission_id.in_(list(submission_ids)),
            QuestionResult.is_current.is_(True),
            QuestionResult.public_view.is_not(None),
        )
    )
    return session.execute(statement).all()


def list_for_assignment(
    session: Session, course_id: int, slug: str, user_id: int | None, limit: int, offset: int
) -> Sequence[Row[Submission, JobStatus, str]]:
    """Submissions to a course's assignment (any version), newest first; one student's if user_id
    is given. Another course's assignment of the same slug is another assignment."""
    statement = (
        select(Submission, GradingJob.status, User.username)
        .join(GradingJob, _original_job())
        .join(User, User.id == Submission.user_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .where(Assignment.course_id == course_id, Assignment.slug == slug)
        .order_by(Submission.created_at.desc(), Submission.id)
        .limit(limit)
        .offset(offset)
    )
    if user_id is not None:
        statement = statement.where(Submission.user_id == user_id)
    return session.execute(statement).all()


def _of_assignment(statement: Any, assignment_id: int) -> Any:
    """Restrict a statement over submissions to one assignment (every version of it)."""
    return statement.join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id).where(
        AssignmentVersion.assignment_id == assignment_id
    )


def status_counts(session: Session, assignment_id: int) -> dict[JobStatus, int]:
    """How many of the assignment's submissions are in each state of their first grading."""
    statement = _of_assignment(
        select(GradingJob.status, func.count()).select_from(Submission).join(GradingJob, _original_job()),
        assignment_id,
    ).group_by(GradingJob.status)
    return {status: count for status, count in session.execute(statement).all()}  # noqa: C416


def answers_awaiting_a_person(session: Session, assignment_id: int) -> int:
    """Current answers the graders left to people (pending_manual) that no one has graded yet."""
    statement = _of_assignment(
        select(func.count())
        .select_from(Submission)
        .join(QuestionResult, QuestionResult.submission_id == Submission.id)
        .outerjoin(
            ManualGrade,
            (ManualGrade.submission_id == Submission.id)
            & (ManualGrade.question_key == QuestionResult.question_key),
        ),
        assignment_id,
    ).where(
        QuestionResult.is_current.is_(True),
        QuestionResult.verdict == Verdict.PENDING_MANUAL,
        ManualGrade.id.is_(None),
    )
    return int(session.scalar(statement) or 0)


def submission_times(session: Session, assignment_id: int, since: datetime) -> Sequence[datetime]:
    """When the assignment's submissions since `since` came in (one timestamp column, no rows)."""
    statement = _of_assignment(select(Submission.created_at), assignment_id).where(
        Submission.created_at >= since
    )
    return session.scalars(statement).all()


def first_and_last_submission(session: Session, assignment_id: int) -> Row[datetime | None, datetime | None]:
    statement = _of_assignment(
        select(func.min(Submission.created_at), func.max(Submission.created_at)), assignment_id
    )
    return session.execute(statement).one()


# A submission has one job per grading (the first, then one per regrade) and one result row per
# question per revision: both bounded by the number of regrades, which staff start by hand.
MAX_HISTORY_ROWS = 2_000


def jobs_of(session: Session, submission_id: uuid.UUID) -> Sequence[GradingJob]:
    """Every grading of the submission, the first (revision 1) first."""
    statement = (
        select(GradingJob)
        .where(GradingJob.submission_id == submission_id)
        .order_by(GradingJob.revision)
        .limit(MAX_HISTORY_ROWS)
    )
    return session.scalars(statement).all()


def all_results_of(session: Session, submission_id: uuid.UUID) -> Sequence[QuestionResult]:
    """Every revision of every result of the submission, current or not, oldest first."""
    statement = (
        select(QuestionResult)
        .where(QuestionResult.submission_id == submission_id)
        .order_by(QuestionResult.revision, QuestionResult.question_key)
        .limit(MAX_HISTORY_ROWS)
    )
    return session.scalars(statement).all()
