"""The demo: course `demo` with a student and a TA, and the hw5 assignment loaded."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.auth.service import issue_token
from service.config import REPOSITORY_ROOT, Settings
from service.courses.service import enroll, ensure_course, ensure_user
from service.models import Role

DEMO_COURSE = "demo"
DEMO_ASSIGNMENT_FOLDER = REPOSITORY_ROOT / "reference" / "hw5"


@dataclass(frozen=True)
class DemoAccounts:
    student_token: str
    ta_token: str
    assignment: str
    assignment_version: int


def prepare_demo(session: Session, settings: Settings) -> DemoAccounts:
    """Idempotent: re-running keeps the data and adds a version only if the material changed."""
    course = ensure_course(session, DEMO_COURSE, "Deep Learning (demo)")
    outcome = load_assignment(session, DEMO_COURSE, read_material(DEMO_ASSIGNMENT_FOLDER))
    student = ensure_user(session, "student", "Demo Student")
    ta = ensure_user(session, "ta", "Demo TA")
    enroll(session, course, student, Role.STUDENT)
    enroll(session, course, ta, Role.TA)
    return DemoAccounts(
        student_token=issue_token(session, student.id, "demo", settings.demo_student_token),
        ta_token=issue_token(session, ta.id, "demo", settings.demo_ta_token),
        assignment=outcome.slug,
        assignment_version=outcome.version,
    )
