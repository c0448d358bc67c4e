"""One student's answer never touches another's grade: what a grader returns is stored whatever it
holds, a job whose rows the database refuses ends `error` alone, and staff views always open."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from graders import GradeResult, GradingContext, Verdict
from graders.tensor import TensorAnswer, TensorConfig, TensorGrader
from service.models import Question, QuestionResult, utcnow
from tests.conftest import Api

GOOD = {"q1_2": {"choices": [3]}, "q3_1": {"value": [6, 1, 2]}}
POISON = {"q1_2": {"choices": [3]}, "q3_1": {"value": [9, 9, 9]}}
HOSTILE_TEXT = "line\x00one \x1b[31mred\x1b[0m\x07 \u202eevil\ud800\tend"


def deep_list(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def poisoning_tensor_grader(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tensor grader, except that the answer [9, 9, 9] comes back with everything a sandbox can
    put in a result: NUL and escapes in text, NaN and infinities, a 400-level nesting."""
    original = TensorGrader.grade

    def grade(self: TensorGrader, config: TensorConfig, answer: TensorAnswer, context: GradingContext) -> Any:
        if answer.value != [9, 9, 9]:
            return original(self, config, answer, context)
        details = {"output": HOSTILE_TEXT, "seconds": math.nan, "limit": math.inf, "error": deep_list(400)}
        return GradeResult(Verdict.CORRECT, 1.0, HOSTILE_TEXT, details)

    monkeypatch.setattr(TensorGrader, "grade", grade)


def submit_batch(api: Api) -> dict[str, str]:
    """Three submissions of two courses, queued so that one claim takes them all."""
    return {
        "poisoned": api.submit("student", POISON).json()["id"],
        "classmate": api.submit("student2", GOOD).json()["id"],
        "other_course": api.submit(
            "outsider", {"q1": {"choices": [1]}}, assignment="other1", course="other"
        ).json()["id"],
    }


def test_nul_nan_escapes_and_deep_nesting_are_stored_beside_the_batch(
    api: Api, poisoning_tensor_grader: None
) -> None:
    ids = submit_batch(api)
    assert api.runner.run_once() == 3  # one claimed batch
    assert api.get("ta", f"/api/v1/submissions/{ids['classmate']}").json()["status"] == "graded"
    assert api.get("other_ta", f"/api/v1/submissions/{ids['other_course']}").json()["status"] == "graded"

    path = f"/api/v1/submissions/{ids['poisoned']}"
    staff = api.get("ta", path)
    assert staff.status_code == 200, staff.text
    q3 = staff.json()["questions"]["q3_1"]
    assert q3["feedback"] == "lineone red evil\tend"
    assert (q3["details"]["seconds"], q3["details"]["limit"]) == ("NaN", "Infinity")
    assert q3["details"]["output"] == "lineone red evil\tend"
    assert "[cut: nested deeper than 32 levels]" in json.dumps(q3["details"]["error"])
    # The TA can take back the forged full marks.
    override = api.client.put(
        f"{path}/questions/q3_1/grade",
        json={"score": 0, "feedback": "forged", "reason": "the sandbox's output was forged"},
        headers=api.accounts.header("ta"),
    )
    assert override.status_code == 200, override.text
    assert override.json()["score"] == 1.0  # q1_2 only


def test_a_job_whose_rows_are_refused_ends_error_alone(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    ids = submit_batch(api)
    # A row the unique key (submission, question) will refuse the poisoned job's results beside.
    with session_factory() as session, session.begin():
        question_id = session.scalars(select(Question.id).where(Question.key == "q1_2")).first()
        assert question_id is not None
        session.add(
            QuestionResult(
                submission_id=uuid.UUID(ids["poisoned"]), question_id=question_id, question_key="q1_2",
                verdict="correct", score=1.0, max_score=1.0, feedback="", details={}, grader_kind="choice",
                grader_version="1", reference_version="x", job_attempt=0, graded_at=utcnow(),
            )
        )  # fmt: skip
    assert api.runner.run_once() == 3
    assert api.get("ta", f"/api/v1/submissions/{ids['classmate']}").json()["status"] == "graded"
    assert api.get("other_ta", f"/api/v1/submissions/{ids['other_course']}").json()["status"] == "graded"
    staff = api.get("ta", f"/api/v1/submissions/{ids['poisoned']}").json()
    assert staff["status"] == "error"
    assert staff["error"].startswith("the results could not be stored: ")
    assert "IntegrityError" in staff["error"] or "UniqueViolation" in staff["error"]
    assert api.get("student", f"/api/v1/submissions/{ids['poisoned']}").json()["error"] is None
    assert api.runner.run_once() == 0  # not claimed again


def test_a_stored_row_nested_too_deep_still_opens_and_takes_an_override(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    """Rows stored before results were bounded: the staff view bounds them too."""
    submission_id = api.submit("student", GOOD).json()["id"]
    assert api.grade_pending() == 1
    with session_factory() as session, session.begin():
        session.execute(
            update(QuestionResult)
            .where(QuestionResult.submission_id == uuid.UUID(submission_id))
            .values(details={"error": deep_list(400)})
        )
    path = f"/api/v1/submissions/{submission_id}"
    assert api.get("ta", path).status_code == 200
    override = api.client.put(
        f"{path}/questions/q3_1/grade",
        json={"score": 0, "reason": "stored before results were bounded"},
        headers=api.accounts.header("ta"),
    )
    assert override.status_code == 200, override.text
    assert override.json()["score"] == 1.0
