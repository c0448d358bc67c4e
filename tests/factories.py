"""Plain functions that put known data into a test database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.auth.service import issue_token
from service.config import Settings
from service.courses.service import enroll, ensure_course, ensure_user
from service.demo import prepare_demo
from service.models import Role

OTHER_ASSIGNMENT_TOML = """
slug = "other1"
title = "Another course's quiz"

[[questions]]
id = "q1"
kind = "choice"
points = 1
[questions.config]
options = ["yes", "no"]
correct = [1]
"""


@dataclass(frozen=True)
class Accounts:
    """Tokens by role: `student`, `student2`, `ta`, `instructor` in course demo (hw5);
    `outsider` (a student) and `other_ta` in course `other` (assignment other1)."""

    tokens: dict[str, str]

    def header(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def add_user(session: Session, username: str, course_slug: str, role: Role) -> str:
    course = ensure_course(session, course_slug)
    user = ensure_user(session, username)
    enroll(session, course, user, role)
    return issue_token(session, user.id, "test")


def seed_courses(session: Session, settings: Settings, tmp_path: Path) -> Accounts:
    demo = prepare_demo(session, settings)
    other_folder = tmp_path / "other1"
    other_folder.mkdir(exist_ok=True)
    (other_folder / "assignment.toml").write_text(OTHER_ASSIGNMENT_TOML)
    load_assignment(session, "other", read_material(other_folder))
    tokens = {
        "student": demo.student_token,
        "ta": demo.ta_token,
        "student2": add_user(session, "student2", "demo", Role.STUDENT),
        "instructor": add_user(session, "instructor", "demo", Role.INSTRUCTOR),
        "outsider": add_user(session, "outsider", "other", Role.STUDENT),
        "other_ta": add_user(session, "other_ta", "other", Role.TA),
    }
    session.commit()
    return Accounts(tokens)
