from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from service.assignments.policy import StoredRules
from service.db import read_on_connection
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


_ACCESS = (
    select(AssignmentVersion.id, Enrollment.role)
    .select_from(Assignment)
    .join(Course, Course.id == Assignment.course_id)
    .join(AssignmentVersion, AssignmentVersion.assignment_id == Assignment.id)
    .outerjoin(
        Enrollment,
        (Enrollment.course_id == Assignment.course_id) & (Enrollment.user_id == bindparam("user_id")),
    )
    .where(Course.slug == bindparam("course_slug"), Assignment.slug == bindparam("slug"))
    .order_by(AssignmentVersion.version.desc())
    .limit(1)
)


def access_to_assignment(
    session: Session, course_slug: str, slug: str, user_id: int
) -> tuple[int, Role | None] | None:
    """(latest version id, the user's role in the assignment's course or None), in one query
    (built once: it runs on every request about an assignment)."""
    parameters = {"course_slug": course_slug, "slug": slug, "user_id": user_id}
    row = read_on_connection(session, _ACCESS, parameters).one_or_none()
    return None if row is None else (row[0], row[1])


def latest_version(session: Session, assignment_id: int) -> AssignmentVersion | None:
    statement = (
        select(AssignmentVersion)
        .where(AssignmentVersion.assignment_id == assignment_id)
        .order_by(AssignmentVersion.version.desc())
        .limit(1)
    )
    return session.scalars(statement).one_or_none()


_RULES = (
    select(
        AssignmentVersion.id,
        AssignmentVersion.policy,
        AssignmentPolicy.id,
        AssignmentPolicy.policy,
        AssignmentPolicy.released_at,
    )
    .outerjoin(AssignmentPolicy, AssignmentPolicy.assignment_id == AssignmentVersion.assignment_id)
    .where(AssignmentVersion.assignment_id == bindparam("assignment_id"))
    .order_by(AssignmentVersion.version.desc())
    .limit(1)
)


def stored_rules(session: Session, assignment_id: int) -> StoredRules | None:
    """The newest version and the course's override in one statement (it runs on every submission;
    built once, so neither its construction nor its cache key is paid per call)."""
    row = session.execute(_RULES, {"assignment_id": assignment_id}).one_or_none()
    if row is None:
        return None
    return StoredRules.from_columns(*row)


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
