"""The demo: course `demo` with a student and a TA, and the example assignments hw5 and layers loaded."""

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
# The second example (docs/authoring.md): modules, a backward returning a tuple, a gradient check,
# a regression model and a hidden check, in one notebook question.
LAYERS_ASSIGNMENT_FOLDER = REPOSITORY_ROOT / "reference" / "layers"
# Loaded in this order; the first is the one the printed curl example submits to.
DEMO_ASSIGNMENT_FOLDERS = (DEMO_ASSIGNMENT_FOLDER, LAYERS_ASSIGNMENT_FOLDER)


@dataclass(frozen=True)
class DemoAccounts:
    student_token: str
    ta_token: str
    # Each loaded assignment's slug and current version, in DEMO_ASSIGNMENT_FOLDERS order.
    versions: dict[str, int]

    @property
    def assignment(self) -> str:
        """hw5, the assignment of the printed curl example."""
        return next(iter(self.versions))

    @property
    def assignment_version(self) -> int:
        return self.versions[self.assignment]


def prepare_demo(session: Session, settings: Settings) -> DemoAccounts:
    """Idempotent: re-running keeps the data and adds a version only if the material changed."""
    course = ensure_course(session, DEMO_COURSE, "Deep Learning (demo)")
    versions: dict[str, int] = {}
    for folder in DEMO_ASSIGNMENT_FOLDERS:
        outcome = load_assignment(session, DEMO_COURSE, read_material(folder))
        versions[outcome.slug] = outcome.version
    student = ensure_user(session, "student", "Demo Student")
    ta = ensure_user(session, "ta", "Demo TA")
    enroll(session, course, student, Role.STUDENT)
    enroll(session, course, ta, Role.TA)
    return DemoAccounts(
        student_token=issue_token(session, student.id, "demo", settings.demo_student_token),
        ta_token=issue_token(session, ta.id, "demo", settings.demo_ta_token),
        versions=versions,
    )
