"""Loading assignment material: validated against each grader's schema, versioned on change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.errors import MaterialError
from service.models import AssignmentVersion, Question
from tests.conftest import HW5_FOLDER

MINIMAL = """
slug = "quiz"
title = "Quiz"
reference_module = "reference.py"

[[questions]]
id = "q1"
kind = "{kind}"
points = 1
[questions.config]
{config}
"""

REFERENCE = "def double(x):\n    return x * 2\n"


def write_material(
    folder: Path, kind: str = "choice", config: str = 'options = ["a", "b"]\ncorrect = [2]'
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "assignment.toml").write_text(MINIMAL.format(kind=kind, config=config))
    (folder / "reference.py").write_text(REFERENCE)
    return folder


def test_hw5_material_is_valid() -> None:
    loaded = read_material(HW5_FOLDER)
    assert loaded.material.slug == "hw5"
    assert [q.id for q in loaded.material.questions] == [
        *("q1_1", "q1_2", "q1_3", "q2_1", "q2_2", "q2_3", "q2_4"),
        *("q3_1", "q3_1b", "q3_3", "q3_2"),
        "q4",
    ]
    # `use = ["bptt"]` pulls the shared symbol table into each Q2 question.
    q2_3 = next(q for q in loaded.material.questions if q.id == "q2_3")
    assert "use" not in q2_3.config
    assert q2_3.config["reference"] == "q2_3_point"
    assert len(q2_3.config["symbols"]) == 12
    assert "def hard_attention" in loaded.reference_source
    assert len(loaded.content_hash) == 64


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        (
            "essay",
            "",
            "unknown grader kind 'essay'; known kinds: choice, expression, manual, notebook, tensor",
        ),
        ("graders.choice.ChoiceGrader", "", "unknown grader kind"),
        ("choice", 'options = ["a", "b"]\ncorrect = [5]', "correct names option 5"),
        ("choice", 'options = ["a", "b"]\ncorrect = [1]\nshuffle = true', "Extra inputs are not permitted"),
        ("tensor", 'reference = "triple"\ninputs = { x = 1 }', "defines no triple (it defines: double)"),
        ("tensor", 'reference = "double"\ninputs = { y = 1 }', "the reference fails on this question"),
    ],
)
def test_invalid_material_names_the_problem(tmp_path: Path, kind: str, config: str, message: str) -> None:
    with pytest.raises(MaterialError, match="question q1") as raised:
        read_material(write_material(tmp_path / "quiz", kind, config))
    assert message in str(raised.value)


def test_material_problems_outside_questions(tmp_path: Path) -> None:
    with pytest.raises(MaterialError, match="does not exist"):
        read_material(tmp_path)
    folder = write_material(tmp_path / "quiz")
    (folder / "assignment.toml").write_text("slug = [")
    with pytest.raises(MaterialError, match=r"assignment\.toml"):
        read_material(folder)
    folder = write_material(tmp_path / "escape")
    text = (folder / "assignment.toml").read_text().replace("reference.py", "../../etc/passwd")
    (folder / "assignment.toml").write_text(text)
    with pytest.raises(MaterialError, match="outside"):
        read_material(folder)


def versions(session: Session, course: str = "course-a", slug: str = "hw5") -> list[int]:
    from service.models import Assignment, Course

    statement = (
        select(AssignmentVersion.version)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .join(Course, Course.id == Assignment.course_id)
        .where(Course.slug == course, Assignment.slug == slug)
        .order_by(AssignmentVersion.version)
    )
    return list(session.scalars(statement))


def test_reloading_makes_a_version_only_when_something_changed(session: Session, tmp_path: Path) -> None:
    folder = tmp_path / "hw5"
    shutil.copytree(HW5_FOLDER, folder)
    first = load_assignment(session, "course-a", read_material(folder))
    again = load_assignment(session, "course-a", read_material(folder))
    assert (first.version, first.changed) == (1, True)
    assert (again.version, again.changed) == (1, False)
    assert versions(session) == [1]

    toml = folder / "assignment.toml"
    toml.write_text(
        toml.read_text().replace('points = 2\nprompt = "What are', 'points = 3\nprompt = "What are')
    )
    changed = load_assignment(session, "course-a", read_material(folder))
    assert (changed.version, changed.changed) == (2, True)
    (folder / "reference.py").write_text((folder / "reference.py").read_text() + "\n# a comment\n")
    assert load_assignment(session, "course-a", read_material(folder)).version == 3
    assert versions(session) == [1, 2, 3]
    question_rows = session.scalar(select(func.count()).select_from(Question))
    assert question_rows == 3 * 12

    # Another course loading the same material gets its own assignment, with its own versions.
    other = load_assignment(session, "course-b", read_material(folder))
    assert (other.version, other.changed) == (1, True)
    assert versions(session, "course-b") == [1]
    assert versions(session) == [1, 2, 3]


def test_unknown_shared_fragments_are_refused(tmp_path: Path) -> None:
    folder = write_material(tmp_path / "quiz", config='use = ["nope"]\noptions = ["a", "b"]\ncorrect = [1]')
    with pytest.raises(MaterialError, match="unknown shared config 'nope'"):
        read_material(folder)
