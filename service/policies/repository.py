"""Every SQL statement of the policies domain: the course's policy row, extensions, the lateness
stored on submissions, and the counts of attempts a student has used."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, exists, or_, select, update
from sqlalchemy.orm import Session

from graders import Verdict
from service.assignments.policy import StoredRules
from service.db import advisory_xact_lock, read_on_connection
from service.models import (
    AssignmentPolicy,
    AssignmentVersion,
    Enrollment,
    Extension,
    GradingJob,
    JobStatus,
    ManualGrade,
    QuestionResult,
    Role,
    Submission,
    User,
    utcnow,
)

# The class key of pg_advisory_xact_lock(class, user_id) while a student's attempts are counted.
ATTEMPT_LOCK_CLASS = 0x4154  # "AT"

# Answers graded so use no attempt (unless a person graded them anyway).
_FREE_VERDICTS = (Verdict.INVALID, Verdict.ERROR)


def lock_student_attempts(session: Session, user_id: int) -> None:
    """Serialise one student's concurrent submissions until commit (Postgres), so that two of them
    cannot both see one attempt left. SQLite's BEGIN IMMEDIATE already does."""
    advisory_xact_lock(session, ATTEMPT_LOCK_CLASS, user_id)


def policy_row(session: Session, assignment_id: int) -> AssignmentPolicy | None:
    statement = select(AssignmentPolicy).where(AssignmentPolicy.assignment_id == assignment_id)
    return session.scalars(statement).one_or_none()


def policy_row_for_update(session: Session, assignment_id: int, user_id: int) -> AssignmentPolicy:
    """The assignment's policy row, created (no override, not released) if it has none."""
    row = policy_row(session, assignment_id)
    if row is None:
        row = AssignmentPolicy(assignment_id=assignment_id, policy=None, released_at=None)
        session.add(row)
    row.updated_by_user_id = user_id
    row.updated_at = utcnow()
    return row


def flush(session: Session) -> None:
    session.flush()


def extension_of(session: Session, assignment_id: int, user_id: int) -> Extension | None:
    statement = select(Extension).where(
        Extension.assignment_id == assignment_id, Extension.user_id == user_id
    )
    return session.scalars(statement).one_or_none()


# The assignment's rules (service/assignments/repository.py reads the same columns) and the
# student's extension, in one statement: every submission reads both.
_ADMISSION = (
    select(
        AssignmentVersion.id,
        AssignmentVersion.policy,
        AssignmentPolicy.id,
        AssignmentPolicy.policy,
        AssignmentPolicy.released_at,
        Extension.due_at,
    )
    .outerjoin(AssignmentPolicy, AssignmentPolicy.assignment_id == AssignmentVersion.assignment_id)
    .outerjoin(
        Extension,
        (Extension.assignment_id == AssignmentVersion.assignment_id)
        & (Extension.user_id == bindparam("user_id")),
    )
    .where(AssignmentVersion.assignment_id == bindparam("assignment_id"))
    .order_by(AssignmentVersion.version.desc())
    .limit(1)
)


def admission_facts(
    session: Session, assignment_id: int, user_id: int
) -> tuple[StoredRules | None, datetime | None]:
    """The assignment's stored rules and the student's own due time (None: no extension)."""
    parameters = {"assignment_id": assignment_id, "user_id": user_id}
    row = read_on_connection(session, _ADMISSION, parameters).one_or_none()
    if row is None:
        return None, None
    version_id, material, override_id, override_policy, released_at, due_at = row
    return StoredRules.from_columns(version_id, material, override_id, override_policy, released_at), due_at


def extensions_of(session: Session, assignment_id: int) -> Sequence[Row[Extension, str, str | None]]:
    """The assignment's extensions with the student's username and the granter's, by student."""
    granter = User.__table__.alias("granter")
    statement = (
        select(Extension, User.username, granter.c.username)
        .join(User, User.id == Extension.user_id)
        .outerjoin(granter, granter.c.id == Extension.granted_by_user_id)
        .where(Extension.assignment_id == assignment_id)
        .order_by(User.username)
    )
    return session.execute(statement).all()


def extension_due_times(session: Session, assignment_id: int) -> dict[int, datetime]:
    statement = select(Extension.user_id, Extension.due_at).where(Extension.assignment_id == assignment_id)
    return {row[0]: row[1] for row in session.execute(statement).all()}


def add_extension(session: Session, extension: Extension) -> None:
    session.add(extension)


def delete_extension(session: Session, extension: Extension) -> None:
    session.delete(extension)


def _of_assignment(statement: Any, assignment_id: int) -> Any:
    return statement.join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id).where(
        AssignmentVersion.assignment_id == assignment_id
    )


def student_submission_times(
    session: Session, course_id: int, assignment_id: int, user_id: int | None
) -> Sequence[Row[uuid.UUID, int, datetime, int, float]]:
    """(id, user id, created_at, late_seconds, late_penalty) of the students' submissions to the
    assignment (all versions; staff's test runs left out), one student's if user_id is given."""
    statement = _of_assignment(
        select(
            Submission.id,
            Submission.user_id,
            Submission.created_at,
            Submission.late_seconds,
            Submission.late_penalty,
        ).join(Enrollment, and_(Enrollment.user_id == Submission.user_id, Enrollment.course_id == course_id)),
        assignment_id,
    ).where(Enrollment.role == Role.STUDENT)
    if user_id is not None:
        statement = statement.where(Submission.user_id == user_id)
    return session.execute(statement).all()


def set_lateness(session: Session, changes: Sequence[dict[str, Any]]) -> None:
    """Write {"id", "late_seconds", "late_penalty"} rows in one executemany."""
    if changes:
        session.execute(update(Submission), list(changes), execution_options={"synchronize_session": False})


def used_attempts(session: Session, assignment_id: int, user_id: int) -> tuple[Counter[str], int]:
    """What a student has used on an assignment (all versions): attempts per question and the
    number of submissions that used at least one. An answer uses an attempt unless its current
    result is invalid or error (and no person graded it); an answer not graded yet uses one."""
    countable = or_(
        QuestionResult.verdict.not_in(_FREE_VERDICTS),
        exists().where(
            ManualGrade.submission_id == QuestionResult.submission_id,
            ManualGrade.question_key == QuestionResult.question_key,
        ),
    )
    graded = _of_assignment(
        select(QuestionResult.submission_id, QuestionResult.question_key)
        .join(Submission, Submission.id == QuestionResult.submission_id)
        .where(Submission.user_id == user_id, QuestionResult.is_current, countable),
        assignment_id,
    )
    per_question: Counter[str] = Counter()
    submissions: set[uuid.UUID] = set()
    for submission_id, key in session.execute(graded).all():
        per_question[key] += 1
        submissions.add(submission_id)
    # Not graded yet (the original job queued or running): each answer counts. Few at a time, so
    # their answers' keys are read here; a failed job (status error) costs nothing. An answer a
    # regrade already graded before the first job (its current result) was counted above, or is
    # free: it is not counted again.
    in_flight = _of_assignment(
        select(Submission.id, Submission.answers)
        .join(GradingJob, and_(GradingJob.submission_id == Submission.id, GradingJob.revision == 1))
        .where(Submission.user_id == user_id, GradingJob.status.in_((JobStatus.QUEUED, JobStatus.RUNNING))),
        assignment_id,
    )
    pending = session.execute(in_flight).all()
    graded_already = set()
    if pending:
        graded_already = {
            (row[0], row[1])
            for row in session.execute(
                select(QuestionResult.submission_id, QuestionResult.question_key).where(
                    QuestionResult.submission_id.in_([submission_id for submission_id, _ in pending]),
                    QuestionResult.is_current,
                )
            ).all()
        }
    for submission_id, answers in pending:
        waiting = [key for key in answers if (submission_id, key) not in graded_already]
        per_question.update(waiting)
        if waiting:
            submissions.add(submission_id)
    return per_question, len(submissions)
