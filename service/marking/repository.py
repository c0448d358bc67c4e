"""Every SQL statement of marking: the manual queue, TAs' grades (optimistic concurrency), the audit
log, a submission's raw total, and one student's history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Executable,
    Row,
    and_,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from graders import Verdict
from service.models import (
    Assignment,
    AssignmentVersion,
    Course,
    GradeAuditEntry,
    GradingJob,
    JobStatus,
    ManualGrade,
    Question,
    QuestionResult,
    Submission,
    User,
)


@dataclass(frozen=True, slots=True)
class SubmissionContext:
    """A submission with what marking needs around it: its student, course and assignment, and
    the status of its first grading (a regrade's jobs do not make it ungraded)."""

    submission: Submission
    status: JobStatus
    student: str
    course_id: int
    course_slug: str
    assignment_slug: str


def submission_context(session: Session, submission_id: uuid.UUID) -> SubmissionContext | None:
    statement = (
        select(Submission, GradingJob.status, User.username, Course.id, Course.slug, Assignment.slug)
        .join(GradingJob, and_(GradingJob.submission_id == Submission.id, GradingJob.revision == 1))
        .join(User, User.id == Submission.user_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .join(Course, Course.id == Assignment.course_id)
        .where(Submission.id == submission_id)
    )
    row = session.execute(statement).one_or_none()
    return None if row is None else SubmissionContext(*row)


def current_result(session: Session, submission_id: uuid.UUID, question_key: str) -> QuestionResult | None:
    statement = select(QuestionResult).where(
        QuestionResult.submission_id == submission_id,
        QuestionResult.question_key == question_key,
        QuestionResult.is_current.is_(True),
    )
    return session.scalars(statement).one_or_none()


def current_results(session: Session, submission_ids: Sequence[uuid.UUID]) -> Sequence[QuestionResult]:
    statement = (
        select(QuestionResult)
        .where(QuestionResult.submission_id.in_(submission_ids), QuestionResult.is_current.is_(True))
        .order_by(QuestionResult.submission_id, QuestionResult.id)
    )
    return session.scalars(statement).all()


def version_of_question(session: Session, question_id: int) -> int:
    """The assignment version a question row belongs to (the one its result was graded against)."""
    return int(
        session.scalars(select(Question.assignment_version_id).where(Question.id == question_id)).one()
    )


def manual_grade(session: Session, submission_id: uuid.UUID, question_key: str) -> ManualGrade | None:
    statement = select(ManualGrade).where(
        ManualGrade.submission_id == submission_id, ManualGrade.question_key == question_key
    )
    return session.scalars(statement).one_or_none()


def manual_grades_of(session: Session, submission_ids: Sequence[uuid.UUID]) -> Sequence[ManualGrade]:
    return session.scalars(select(ManualGrade).where(ManualGrade.submission_id.in_(submission_ids))).all()


def insert_manual_grade(session: Session, grade: ManualGrade) -> bool:
    """Insert the first grade of an answer; False when a concurrent request inserted one first
    (the unique key refuses ours; the savepoint keeps the caller's transaction usable)."""
    try:
        with session.begin_nested():
            session.add(grade)
    except IntegrityError:
        return False
    return True


def update_manual_grade(
    session: Session, grade_id: int, expected_version: int, values: dict[str, Any]
) -> bool:
    """Change a grade only if it is still at the version the grader saw; False otherwise.

    The version test is in the UPDATE itself: on PostgreSQL a racing transaction waits for the
    first to commit, re-reads the row and finds the version moved, so exactly one of two wins."""
    statement = (
        update(ManualGrade)
        .where(ManualGrade.id == grade_id, ManualGrade.version == expected_version)
        .values(**values, version=ManualGrade.version + 1)
    )
    return _changed_rows(session, statement) == 1


def delete_manual_grade(session: Session, grade_id: int, expected_version: int) -> bool:
    statement = delete(ManualGrade).where(ManualGrade.id == grade_id, ManualGrade.version == expected_version)
    return _changed_rows(session, statement) == 1


def _changed_rows(session: Session, statement: Executable) -> int:
    result = cast(
        CursorResult[Any], session.execute(statement, execution_options={"synchronize_session": False})
    )
    return result.rowcount


def refresh(session: Session, grade: ManualGrade) -> None:
    session.refresh(grade)


def add_audit(session: Session, entry: GradeAuditEntry) -> None:
    session.add(entry)
    session.flush()


def submission_order(session: Session, submission_id: uuid.UUID) -> Row[datetime, uuid.UUID] | None:
    statement = select(Submission.created_at, Submission.id).where(Submission.id == submission_id)
    return session.execute(statement).one_or_none()


def manual_queue(
    session: Session,
    assignment_id: int,
    question_key: str,
    include_graded: bool,
    after: Row[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[Row[Submission, str, ManualGrade | None, int, float]]:
    """The answers to one question left to a person (current result pending_manual), oldest
    first, over every version of the assignment, each with the version its result was graded
    against and its points; without include_graded only those no one has graded yet. Keyset on
    (submitted at, id): a TA's skip survives others grading meanwhile."""
    graded = aliased(ManualGrade)
    statement = (
        select(Submission, User.username, graded, Question.assignment_version_id, QuestionResult.max_score)
        .join(QuestionResult, QuestionResult.submission_id == Submission.id)
        .join(Question, Question.id == QuestionResult.question_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(User, User.id == Submission.user_id)
        .outerjoin(
            graded,
            and_(graded.submission_id == Submission.id, graded.question_key == QuestionResult.question_key),
        )
        .where(
            AssignmentVersion.assignment_id == assignment_id,
            QuestionResult.question_key == question_key,
            QuestionResult.is_current.is_(True),
            QuestionResult.verdict == Verdict.PENDING_MANUAL,
        )
        .order_by(Submission.created_at, Submission.id)
        .limit(limit)
    )
    if not include_graded:
        statement = statement.where(graded.id.is_(None))
    if after is not None:
        created_at, last_id = after
        statement = statement.where(
            or_(
                Submission.created_at > created_at,
                and_(Submission.created_at == created_at, Submission.id > last_id),
            )
        )
    return session.execute(statement).all()


def usernames(session: Session, user_ids: Sequence[int]) -> dict[int, str]:
    rows = session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all()
    return {user_id: username for user_id, username in rows}  # noqa: C416 (rows, not pairs, to mypy)


def audit_of_submission(session: Session, submission_id: uuid.UUID, limit: int) -> Sequence[GradeAuditEntry]:
    statement = (
        select(GradeAuditEntry)
        .where(GradeAuditEntry.submission_id == submission_id)
        .order_by(GradeAuditEntry.id)
        .limit(limit)
    )
    return session.scalars(statement).all()


def audit_of_course(
    session: Session, course_id: int, before_id: int | None, limit: int
) -> Sequence[Row[GradeAuditEntry, str]]:
    """A course's audit entries, newest first, with the student's username; keyset on the id."""
    statement = (
        select(GradeAuditEntry, User.username)
        .join(Submission, Submission.id == GradeAuditEntry.submission_id)
        .join(User, User.id == Submission.user_id)
        .where(GradeAuditEntry.course_id == course_id)
        .order_by(GradeAuditEntry.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        statement = statement.where(GradeAuditEntry.id < before_id)
    return session.execute(statement).all()


def history(
    session: Session, assignment_id: int, user_id: int, limit: int
) -> Sequence[Row[Submission, JobStatus, int]]:
    """A student's submissions to an assignment (every version), newest first, with the status of
    the first grading and the version number."""
    statement = (
        select(Submission, GradingJob.status, AssignmentVersion.version)
        .join(GradingJob, and_(GradingJob.submission_id == Submission.id, GradingJob.revision == 1))
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .where(AssignmentVersion.assignment_id == assignment_id, Submission.user_id == user_id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .limit(limit)
    )
    return session.execute(statement).all()


def course_id(session: Session, course_slug: str) -> int | None:
    return session.scalars(select(Course.id).where(Course.slug == course_slug)).one_or_none()
