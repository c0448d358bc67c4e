from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import (
    Assignment,
    AssignmentPolicy,
    AssignmentVersion,
    Course,
    Enrollment,
    Question,
    Role,
)


def get_assignment(session: Session, course_id: int, slug: str) -> Assignment | None:
    statement = select(Assignment).where(Assignment.course_id == course_id, Assignment.slug == slug)
    return session.scalars(statement).one_or_none()


def get_assignment_in_course(session: Session, course_slug: str, slug: str) -> Assignment | None:
    statement = (
        select(Assignment)
        .join(Course, Course.id == Assignment.course_id)
        .where(Course.slug == course_slug, Assignment.slug == slug)
    )
    return session.scalars(statement).one_or_none()


def access_to_assignment(
    session: Session, course_slug: str, slug: str, user_id: int
) -> tuple[int, Role | None] | None:
    """(latest version id, the user's role in the assignment's course or None), in one query."""
    statement = (
        select(AssignmentVersion.id, Enrollment.role)
        .select_from(Assignment)
        .join(Course, Course.id == Assignment.course_id)
        .join(AssignmentVersion, AssignmentVersion.assignment_id == Assignment.id)
        .outerjoin(
            Enrollment, (Enrollment.course_id == Assignment.course_id) & (Enrollment.user_id == user_id)
        )
        .where(Course.slug == course_slug, Assignment.slug == slug)
        .order_by(AssignmentVersion.version.desc())
        .limit(1)
    )
    row = session.execute(statement).one_or_none()
    return None if row is None else (row[0], row[1])


def latest_version(session: Session, assignment_id: int) -> AssignmentVersion | None:
    statement = (
        select(AssignmentVersion)
        .where(AssignmentVersion.assignment_id == assignment_id)
        .order_by(AssignmentVersion.version.desc())
        .limit(1)
    )
    return session.scalars(statement).one_or_none()


def latest_version_id_and_policy(session: Session, assignment_id: int) -> tuple[int, dict[str, Any]] | None:
    """The id and the material's policy of the assignment's newest version."""
    statement = (
        select(AssignmentVersion.id, AssignmentVersion.policy)
        .where(AssignmentVersion.assignment_id == assignment_id)
        .order_by(AssignmentVersion.version.desc())
        .limit(1)
    )
    row = session.execute(statement).one_or_none()
    return None if row is None else (int(row[0]), dict(row[1] or {}))


def get_version_with_assignment(session: Session, version_id: int) -> tuple[AssignmentVersion, Assignment]:
    statement = (
        select(AssignmentVersion, Assignment)
        .join(Assignment, AssignmentVersion.assignment_id == Assignment.id)
        .where(AssignmentVersion.id == version_id)
    )
    version, assignment = session.execute(statement).one()
    return version, assignment


def next_version_number(session: Session, assignment_id: int) -> int:
    statement = select(func.coalesce(func.max(AssignmentVersion.version), 0)).where(
        AssignmentVersion.assignment_id == assignment_id
    )
    return int(session.scalar(statement) or 0) + 1


def add_assignment(session: Session, course_id: int, slug: str) -> Assignment:
    assignment = Assignment(course_id=course_id, slug=slug)
    session.add(assignment)
    session.flush()
    return assignment


def add_version(session: Session, version: AssignmentVersion, questions: list[Question]) -> AssignmentVersion:
    version.questions = questions
    session.add(version)
    session.flush()
    return version


def policy_override(session: Session, assignment_id: int) -> AssignmentPolicy | None:
    statement = select(AssignmentPolicy).where(AssignmentPolicy.assignment_id == assignment_id)
    return session.scalars(statement).one_or_none()


def assignments_taught_by(session: Session, user_id: int) -> list[tuple[str, str, str, str, int]]:
    """(course slug, course title, assignment slug, newest title, newest version) of every
    assignment in the courses where the user is a TA or an instructor."""
    newest = (
        select(AssignmentVersion.assignment_id, func.max(AssignmentVersion.version).label("version"))
        .group_by(AssignmentVersion.assignment_id)
        .subquery()
    )
    statement = (
        select(Course.slug, Course.title, Assignment.slug, AssignmentVersion.title, AssignmentVersion.version)
        .join(Enrollment, Enrollment.course_id == Course.id)
        .join(Assignment, Assignment.course_id == Course.id)
        .join(newest, newest.c.assignment_id == Assignment.id)
        .join(
            AssignmentVersion,
            (AssignmentVersion.assignment_id == Assignment.id)
            & (AssignmentVersion.version == newest.c.version),
        )
        .where(Enrollment.user_id == user_id, Enrollment.role.in_([Role.TA, Role.INSTRUCTOR]))
        .order_by(Course.slug, Assignment.slug)
    )
    return [(row[0], row[1], row[2], row[3], row[4]) for row in session.execute(statement)]
