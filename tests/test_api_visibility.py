"""Public and hidden notebook checks through the HTTP API, with real sandboxes: before the staff
release the grades a student reads only the public checks' part of a result (score, verdict,
feedback, the total) in every view; after the release everything; staff always everything."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from graders.sandbox import bwrap_path
from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.models.lms import OutboxEvent
from tests.conftest import ON_POSTGRES_ONLY, Api
from tests.graders.notebooks import notebook_text

pytestmark = pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")

BASE = "/api/v1/courses/demo/assignments/vis"
ASSIGNMENT = """\
slug = "vis"
title = "Public and hidden checks"
reference_module = "reference.py"

[[questions]]
id = "warmup"
kind = "choice"
points = 1
prompt = "Pick the second."
[questions.config]
options = ["first", "second"]
correct = [2]

[[questions]]
id = "nb"
kind = "notebook"
points = 8
resource_class = "cpu"
prompt = "Define scale and shift."
[questions.config]
notebook_seconds = 60

[[questions.config.functions]]
name = "scale"
points = 1
reference = "scale_ref"
inputs = "vector_inputs"

[[questions.config.functions]]
name = "shift"
points = 3
reference = "shift_ref"
inputs = "vector_inputs"
visibility = "hidden"
"""
REFERENCE = """\
import numpy as np


def scale_ref(x):
    return 3 * x


def shift_ref(x):
    return x + 1


def vector_inputs(rng):
    return {"x": rng.normal(size=(4,)).astype(np.float32)}
"""
# The public check (scale, 2 of the question's 8 points) wrong, the hidden one (shift, 6) right:
# the real verdict is partial at 6 points, the public one incorrect at 0.
NOTEBOOK = "import torch\ndef scale(x):\n    return 2 * x\ndef shift(x):\n    return x + 1\n"
HIDDEN_LINE = "1 hidden check (3 points) is graded too; its result is shown when the grades are released."


def load_and_submit(api: Api, session_factory: sessionmaker[Session], folder: Path) -> str:
    """Load the `vis` assignment, submit the notebook as the student, grade it; its location."""
    folder.mkdir()
    (folder / "assignment.toml").write_text(ASSIGNMENT)
    (folder / "reference.py").write_text(textwrap.dedent(REFERENCE))
    with session_factory() as session:
        load_assignment(session, "demo", read_material(folder))
        session.commit()
    response = api.client.post(
        f"{BASE}/submissions",
        data={"answers": json.dumps({"warmup": {"choices": [2]}})},
        files={"nb": ("vis.ipynb", notebook_text([NOTEBOOK]).encode())},
        headers=api.accounts.header("student"),
    )
    assert response.status_code == 202, response.text
    assert api.grade_pending() == 1
    return str(response.headers["location"])


@pytest.fixture
def graded(api: Api, session_factory: sessionmaker[Session], tmp_path: Path) -> str:
    return load_and_submit(api, session_factory, tmp_path / "vis")


def read(api: Api, who: str, path: str) -> dict[str, Any]:
    response: httpx2.Response = api.get(who, path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_everything_shown(submission: dict[str, Any]) -> None:
    nb = submission["questions"]["nb"]
    assert (nb["verdict"], nb["score"], nb["hidden"]) == ("partial", 6.0, None)
    assert "shift: 3/3 - correct." in nb["feedback"]
    assert (submission["score"], submission["effective_score"], submission["hidden_pending"]) == (
        7.0,
        7.0,
        False,
    )


@ON_POSTGRES_ONLY
def test_a_student_sees_only_the_public_checks_until_the_release(api: Api, graded: str) -> None:
    student = read(api, "student", graded)
    nb = student["questions"]["nb"]
    assert (nb["verdict"], nb["score"], nb["max_score"]) == ("incorrect", 0.0, 8.0)
    assert nb["hidden"] == {"pending": True, "points": 6.0}
    lines = nb["feedback"].splitlines()
    assert lines[0].startswith("scale: 0/1 - wrong values")
    assert lines[1:] == [HIDDEN_LINE]
    assert nb["details"] is None
    # The total leaves the hidden checks' points out: the warm-up's 1 point only.
    assert (student["score"], student["effective_score"], student["hidden_pending"]) == (1.0, 1.0, True)
    assert "shift:" not in json.dumps(student)

    summary = read(api, "student", f"{BASE}/submissions")["items"][0]
    assert (summary["score"], summary["effective_score"], summary["hidden_pending"]) == (1.0, 1.0, True)

    history = read(api, "student", f"{BASE}/students/student")["submissions"][0]
    answer = history["questions"]["nb"]
    assert (answer["verdict"], answer["auto_score"], answer["raw"], answer["effective"]) == (
        "incorrect",
        0.0,
        0.0,
        0.0,
    )
    assert answer["hidden"] == {"pending": True, "points": 6.0}
    assert answer["feedback"] == nb["feedback"]
    assert (history["score"], history["effective_score"], history["hidden_pending"]) == (1.0, 1.0, True)

    results = read(api, "student", f"{graded}/results.json")
    assert results["score"] == 1.0
    test = next(test for test in results["tests"] if test["name"] == "nb")
    assert (test["score"], test["output"]) == (0.0, nb["feedback"])
    assert "shift:" not in json.dumps(results) + json.dumps(history)

    assert read(api, "student", f"{BASE}/policy")["hidden_results_visible"] is False

    # Staff see everything, always.
    staff = read(api, "ta", graded)
    assert_everything_shown(staff)
    assert staff["questions"]["nb"]["details"]["checks"]["shift"]["status"] == "correct"
    staff_history = read(api, "ta", f"{BASE}/students/student")["submissions"][0]
    assert (staff_history["score"], staff_history["hidden_pending"]) == (7.0, False)
    assert staff_history["questions"]["nb"]["hidden"] is None

    # The release shows the student everything; withholding hides the hidden checks again.
    released = api.client.post(f"{BASE}/release", headers=api.accounts.header("ta"))
    assert released.status_code == 200
    assert released.json()["hidden_results_visible"] is True
    assert_everything_shown(read(api, "student", graded))
    summary = read(api, "student", f"{BASE}/submissions")["items"][0]
    assert (summary["score"], summary["hidden_pending"]) == (7.0, False)
    history = read(api, "student", f"{BASE}/students/student")["submissions"][0]
    assert (history["score"], history["questions"]["nb"]["raw"], history["questions"]["nb"]["hidden"]) == (
        7.0,
        6.0,
        None,
    )
    assert read(api, "student", f"{graded}/results.json")["score"] == 7.0

    api.client.delete(f"{BASE}/release", headers=api.accounts.header("ta"))
    assert read(api, "student", graded)["score"] == 1.0


@ON_POSTGRES_ONLY
def test_a_persons_grade_of_a_concealed_answer_waits_for_the_release(api: Api, graded: str) -> None:
    submission_id = graded.rsplit("/", 1)[1]
    grade = api.client.put(
        f"/api/v1/submissions/{submission_id}/questions/nb/grade",
        json={"score": 5, "reason": "shift is right", "feedback": "shift is right, scale is not"},
        headers=api.accounts.header("ta"),
    )
    assert grade.status_code == 200, grade.text
    student = read(api, "student", graded)
    nb = student["questions"]["nb"]
    assert (nb["score"], nb["person_grade"], student["score"]) == (0.0, None, 1.0)
    assert "shift" not in nb["feedback"]
    assert "shift" not in json.dumps(read(api, "student", f"{BASE}/students/student"))
    assert read(api, "ta", graded)["score"] == 6.0

    api.client.post(f"{BASE}/release", headers=api.accounts.header("ta"))
    released = read(api, "student", graded)
    assert (released["questions"]["nb"]["score"], released["score"]) == (5.0, 6.0)
    assert released["questions"]["nb"]["feedback"] == "shift is right, scale is not"


@ON_POSTGRES_ONLY
def test_the_lms_hears_no_score_with_hidden_results_until_the_release(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The policy holds nothing, but the total would reveal the hidden check: the webhook says a
    grading happened without its scores, and the release sends the score once (docs/lms.md)."""
    created = api.client.post(
        "/api/v1/courses/demo/webhooks",
        json={"url": "https://lms.example.edu/hooks", "events": ["submission.graded", "grade.changed"]},
        headers=api.accounts.header("instructor"),
    )
    assert created.status_code == 201, created.text
    load_and_submit(api, session_factory, tmp_path / "vis")

    def events() -> list[dict[str, Any]]:
        with session_factory() as session:
            return list(session.scalars(select(OutboxEvent.payload).order_by(OutboxEvent.id)))

    (graded,) = events()
    assert graded["data"]["grades_held"] is True
    assert (graded["data"]["score"], graded["data"]["gradebook"]) == (None, None)
    assert api.client.post(f"{BASE}/release", headers=api.accounts.header("ta")).status_code == 200
    _, changed = events()
    assert (changed["type"], changed["data"]["grades_held"], changed["data"]["score"]) == (
        "grade.changed",
        False,
        7.0,
    )
    assert changed["data"]["gradebook"]["score"] == 7.0
    # Released already: nothing more.
    assert api.client.post(f"{BASE}/release", headers=api.accounts.header("ta")).status_code == 200
    assert len(events()) == 2
