from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Course, Enrollment, Role, User


def get_course_by_slug(session: Session, slug: str) -> Course | None:
    return session.scalars(select(Course).where(Course.slug == slug)).one_or_none()


def add_course(session: Session, slug: str, title: str) -> Course:
    course = Course(slug=slug, title=title)
    session.add(course)
    session.flush()
    return course


def get_user_by_username(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def add_user(session: Session, username: str, display_name: str) -> User:
    user = User(username=username, display_name=display_name)
    session.add(user)
    session.flush()
    return user


def get_role(session: Session, course_id: int, user_id: int) -> Role | None:
    statement = select(Enrollment.role).where(
        Enrollment.course_id == course_id, Enrollment.user_id == user_id
    )
    return session.scalars(statement).one_or_none()


def set_role(session: Session, course_id: int, user_id: int, role: Role) -> None:
    enrollment = session.scalars(
        select(Enrollment).where(Enrollment.course_id == course_id, Enrollment.user_id == user_id)
    ).one_or_none()
    if enrollment is None:
        session.add(Enrollment(course_id=course_id, user_id=user_id, role=role))
    else:
        enrollment.role = role
    session.flush()


def student_id(session: Session, course_id: int, username: str) -> int | None:
    """The id of the user enrolled in the course as a student (not its staff) under that name."""
    statement = (
        select(User.id)
        .join(Enrollment, Enrollment.user_id == User.id)
        .where(Enrollment.course_id == course_id, User.username == username, Enrollment.role == Role.STUDENT)
    )
    return session.scalars(statement).one_or_none()


def delete_enrollment(session: Session, course_id: int, user_id: int) -> bool:
    enrollment = session.scalars(
        select(Enrollment).where(Enrollment.course_id == course_id, Enrollment.user_id == user_id)
    ).one_or_none()
    if enrollment is None:
        return False
    session.delete(enrollment)
    session.flush()
    return True


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_course(session: Session, course_id: int) -> Course | None:
    return session.get(Course, course_id)
