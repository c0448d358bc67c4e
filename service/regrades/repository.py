"""Every statement about regrades: the submissions one selects, its record, its progress and the
changes it made (read from the result revisions, which are never overwritten)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, delete, func, insert, or_, select
from sqlalchemy.orm import Session, aliased

from graders import Verdict
from service.db import advisory_xact_lock
from service.models import (
    Assignment,
    AssignmentVersion,
    Course,
    Enrollment,
    GradeAuditEntry,
    GradingJob,
    JobStatus,
    ManualGrade,
    ManualGradeKind,
    QuestionResult,
    Regrade,
    Role,
    Submission,
    User,
)

# The class key of pg_advisory_xact_lock(class, assignment_id): one regrade of an assignment is
# created at a time, so that two cannot give a submission's next jobs the same revision.
REGRADE_LOCK_CLASS = 0x5247  # "RG"


@dataclass(frozen=True, slots=True)
class ClearedGrade:
    submission_id: uuid.UUID
    question_key: str
    score: float
    kind: ManualGradeKind


@dataclass(frozen=True, slots=True)
class Progress:
    ended: int
    errors: int
    last_finished_at: datetime | None


def lock_assignment(session: Session, assignment_id: int) -> None:
    advisory_xact_lock(session, REGRADE_LOCK_CLASS, assignment_id)


def enrolled_students(session: Session, course_id: int, usernames: Sequence[str]) -> set[str]:
    """Those of the usernames that are students of the course."""
    rows = session.scalars(
        select(User.username)
        .join(Enrollment, Enrollment.user_id == User.id)
        .where(
            Enrollment.course_id == course_id,
            Enrollment.role == Role.STUDENT,
            User.username.in_(list(usernames)),
        )
    ).all()
    return set(rows)


def submissions_to_regrade(
    session: Session, assignment_id: int, usernames: Sequence[str] | None, question_key: str | None
) -> list[uuid.UUID]:
    """The assignment's submissions (every version), of the given students if any, that answered
    the question if one is given; oldest first."""
    statement = (
        select(Submission.id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .where(AssignmentVersion.assignment_id == assignment_id)
        .order_by(Submission.created_at, Submission.id)
    )
    if usernames is not None:
        statement = statement.join(User, User.id == Submission.user_id).where(
            User.username.in_(list(usernames))
        )
    if question_key is not None:
        statement = statement.where(_answered(session, question_key))
    return list(session.scalars(statement).all())


def _answered(session: Session, question_key: str) -> Any:
    """The submission's answers hold the question (a top-level key of the JSON object)."""
    if session.get_bind().dialect.name == "postgresql":
        return Submission.answers.op("?")(question_key)
    # SQLite: json_type() of a missing path is NULL. The key is quoted in the path, so a key
    # with a dot or a bracket names itself, not a nested member.
    path = '$."' + question_key.replace('"', '""') + '"'
    return func.json_type(Submission.answers, path).is_not(None)


def add_regrade(session: Session, regrade: Regrade) -> None:
    session.add(regrade)
    # Its jobs name it: the row must exist before they are inserted.
    session.flush()


def take_manual_grades(
    session: Session, submission_ids: Sequence[uuid.UUID], question_key: str | None
) -> list[ClearedGrade]:
    """Delete the people's grades of these submissions (of one question, if given) and return them."""
    if not submission_ids:
        return []
    condition: list[ColumnElement[bool]] = [ManualGrade.submission_id.in_(list(submission_ids))]
    if question_key is not None:
        condition.append(ManualGrade.question_key == question_key)
    rows = session.execute(
        select(ManualGrade.submission_id, ManualGrade.question_key, ManualGrade.score, ManualGrade.kind)
        .where(*condition)
        .order_by(ManualGrade.submission_id, ManualGrade.question_key)
    ).all()
    session.execute(delete(ManualGrade).where(*condition).execution_options(synchronize_session=False))
    return [ClearedGrade(row[0], row[1], row[2], ManualGradeKind(row[3])) for row in rows]


def append_audit(session: Session, entries: Sequence[dict[str, Any]]) -> None:
    if entries:
        session.execute(insert(GradeAuditEntry), list(entries))


def _described() -> Any:
    """A regrade with its course, assignment, version number and requester's username."""
    return (
        select(Regrade, Course.slug, Assignment.slug, AssignmentVersion.version, User.username)
        .join(Course, Course.id == Regrade.course_id)
        .join(Assignment, Assignment.id == Regrade.assignment_id)
        .join(AssignmentVersion, AssignmentVersion.id == Regrade.assignment_version_id)
        .join(User, User.id == Regrade.requested_by_user_id)
    )


def find(session: Session, regrade_id: uuid.UUID) -> Row[Regrade, str, str, int, str] | None:
    row: Row[Regrade, str, str, int, str] | None = session.execute(
        _described().where(Regrade.id == regrade_id)
    ).one_or_none()
    return row


def list_for_assignment(
    session: Session, assignment_id: int, limit: int, offset: int
) -> Sequence[Row[Regrade, str, str, int, str]]:
    statement = (
        _described()
        .where(Regrade.assignment_id == assignment_id)
        .order_by(Regrade.created_at.desc(), Regrade.id)
        .limit(limit)
        .offset(offset)
    )
    rows: Sequence[Row[Regrade, str, str, int, str]] = session.execute(statement).all()
    return rows


def progress(session: Session, regrade_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Progress]:
    """Per regrade: its jobs that ended, those that ended in an error, and when the last ended."""
    if not regrade_ids:
        return {}
    ended = GradingJob.status.in_([JobStatus.DONE, JobStatus.ERROR])
    rows = session.execute(
        select(
            GradingJob.regrade_id,
            func.count().filter(ended),
            func.count().filter(GradingJob.status == JobStatus.ERROR),
            func.max(GradingJob.finished_at),
        )
        .where(GradingJob.regrade_id.in_(list(regrade_ids)))
        .group_by(GradingJob.regrade_id)
    ).all()
    found = {row[0]: Progress(int(row[1]), int(row[2]), row[3]) for row in rows if row[0] is not None}
    return {regrade_id: found.get(regrade_id, Progress(0, 0, None)) for regrade_id in regrade_ids}


def changes(
    session: Session, regrade_id: uuid.UUID
) -> Sequence[Row[str, uuid.UUID, str, float | None, float, Verdict | None, Verdict, float | None]]:
    """Each result the regrade's jobs wrote whose score or verdict differs from the revision
    before it (the one it replaced), with a person's grade of the answer if one governs it."""
    new = aliased(QuestionResult, name="new")
    old = aliased(QuestionResult, name="old")
    earlier = aliased(QuestionResult, name="earlier")
    previous_revision = (
        select(func.max(earlier.revision))
        .where(
            earlier.submission_id == new.submission_id,
            earlier.question_key == new.question_key,
            earlier.revision < new.revision,
        )
        .scalar_subquery()
    )
    statement = (
        select(
            User.username,
            new.submission_id,
            new.question_key,
            old.score,
            new.score,
            old.verdict,
            new.verdict,
            ManualGrade.score,
        )
        .select_from(GradingJob)
        .join(new, (new.submission_id == GradingJob.submission_id) & (new.revision == GradingJob.revision))
        .join(Submission, Submission.id == GradingJob.submission_id)
        .join(User, User.id == Submission.user_id)
        .outerjoin(
            old,
            (old.submission_id == new.submission_id)
            & (old.question_key == new.question_key)
            & (old.revision == previous_revision),
        )
        .outerjoin(
            ManualGrade,
            (ManualGrade.submission_id == new.submission_id) & (ManualGrade.question_key == new.question_key),
        )
        .where(
            GradingJob.regrade_id == regrade_id,
            or_(old.id.is_(None), old.score != new.score, old.verdict != new.verdict),
        )
        .order_by(User.username, Submission.created_at, Submission.id, new.question_key)
    )
    rows: Sequence[Row[str, uuid.UUID, str, float | None, float, Verdict | None, Verdict, float | None]] = (
        session.execute(statement).all()
    )
    return rows
