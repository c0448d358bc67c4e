from __future__ import annotations

from sqlalchemy.orm import Session

from service.courses import repository
from service.models import Course, Role, User


def ensure_course(session: Session, slug: str, title: str | None = None) -> Course:
    course = repository.get_course_by_slug(session, slug)
    return course or repository.add_course(session, slug, title or slug)


def ensure_user(session: Session, username: str, display_name: str | None = None) -> User:
    user = repository.get_user_by_username(session, username)
    return user or repository.add_user(session, username, display_name or username)


def enroll(session: Session, course: Course, user: User, role: Role) -> None:
    repository.set_role(session, course.id, user.id, role)


def role_in(session: Session, course_id: int, user_id: int) -> Role | None:
    """The user's role in the course, or None if they are not enrolled."""
    return repository.get_role(session, course_id, user_id)


def student_id(session: Session, course_id: int, username: str) -> int | None:
    """The id of the course's student of that username; None for staff, outsiders, unknown names."""
    return repository.student_id(session, course_id, username)


def find_course(session: Session, slug: str) -> Course | None:
    return repository.get_course_by_slug(session, slug)


def find_user(session: Session, username: str) -> User | None:
    return repository.get_user_by_username(session, username)


def unenroll(session: Session, course: Course, user: User) -> bool:
    """Take the user out of the course (their submissions and grades stay); False if they were
    not in it."""
    return repository.delete_enrollment(session, course.id, user.id)


def user_by_id(session: Session, user_id: int) -> User | None:
    return repository.get_user(session, user_id)


def course_by_id(session: Session, course_id: int) -> Course | None:
    return repository.get_course(session, course_id)
