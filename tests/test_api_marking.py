"""Marking over HTTP on SQLite and PostgreSQL: the manual queue, rubric grades and overrides with
optimistic concurrency, the append-only audit log, results.json and a student's history."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from service.grading.runner import GradingRunner
from service.models import Assignment, AssignmentPolicy, GradeAuditEntry, Queue, Submission
from tests.conftest import Api, scratch_service

Q3_2 = "Non-differentiable: no gradient reaches the keys. But cheap."


def submit_graded(api: Api, who: str, answers: dict[str, Any]) -> str:
    response = api.submit(who, answers)
    assert response.status_code == 202, response.text
    api.grade_pending()
    return str(response.json()["id"])


def grade_path(submission: str, question: str) -> str:
    return f"/api/v1/submissions/{submission}/questions/{question}/grade"


def put_grade(
    api: Api, who: str, submission: str, question: str, body: dict[str, Any], **headers: str
) -> Any:
    return api.client.put(
        grade_path(submission, question), json=body, headers=api.accounts.header(who) | headers
    )


QUEUE = "/api/v1/courses/demo/assignments/hw5/questions/q3_2/manual-queue"


def test_the_queue_lists_ungraded_answers_oldest_first_and_skips_with_a_cursor(api: Api) -> None:
    first = submit_graded(api, "student", {"q3_2": {"text": Q3_2}})
    second = submit_graded(api, "student2", {"q3_2": {"text": "Argmax is fast."}})
    third = submit_graded(api, "student", {"q3_2": {"text": "Second try."}, "q1_1": {"choices": [2, 3]}})
    submit_graded(api, "student2", {"q1_1": {"choices": [1]}})  # answers no q3_2

    queue = api.get("ta", QUEUE).json()
    assert [item["submission_id"] for item in queue["items"]] == [first, second, third]
    assert queue["items"][0]["answer"] == Q3_2
    assert queue["items"][0]["student"] == "student"
    assert queue["items"][0]["grade"] is None
    assert [(item["item"], item["points"]) for item in queue["items"][0]["rubric"]] == [(1, 1.0), (2, 1.0)]
    assert queue["items"][0]["max_score"] == 2.0
    assert queue["next"] is None

    # Skip: a page of one, then the next after it.
    page = api.get("ta", f"{QUEUE}?limit=1").json()
    assert [item["submission_id"] for item in page["items"]] == [first]
    after = api.get("ta", f"{QUEUE}?limit=1&after={page['next']}").json()
    assert [item["submission_id"] for item in after["items"]] == [second]

    assert put_grade(api, "ta", second, "q3_2", {"score": 1}).status_code == 200
    assert [i["submission_id"] for i in api.get("ta", QUEUE).json()["items"]] == [first, third]
    # A cursor still works after the answer it names was graded (a TA skipped past it).
    resumed = api.get("ta", f"{QUEUE}?after={after['next']}").json()
    assert [item["submission_id"] for item in resumed["items"]] == [third]
    everything = api.get("ta", f"{QUEUE}?include_graded=true").json()["items"]
    assert [item["submission_id"] for item in everything] == [first, second, third]
    assert everything[1]["grade"]["version"] == 1
    assert everything[1]["grade"]["graded_by"] == "ta"

    assert api.get("ta", f"{QUEUE}?after=not-a-cursor!").status_code == 422
    assert api.get("ta", f"{QUEUE}?after=AAAAAAAAAAAAAAAAAAAAAA").status_code == 422
    assert api.get("ta", QUEUE.replace("q3_2", "q9")).status_code == 404
    assert api.get("student", QUEUE).status_code == 403


def test_a_rubric_grade_sums_the_applied_items_and_the_student_sees_them(api: Api) -> None:
    submission = submit_graded(api, "student", {"q3_2": {"text": Q3_2}, "q1_1": {"choices": [2, 3]}})
    body = {
        "feedback": "The gradient point is right.",
        "rubric": [
            {"item": 1, "applied": True, "comment": "Yes."},
            {"item": 2, "applied": False, "comment": "Interpretability?"},
        ],
    }
    graded = put_grade(api, "ta", submission, "q3_2", body)
    assert graded.status_code == 200, graded.text
    assert graded.headers["etag"] == '"1"'
    assert graded.json()["score"] == 2.0  # q1_1's 1 + the rubric's 1

    view = api.get("student", f"/api/v1/submissions/{submission}").json()
    q3_2 = view["questions"]["q3_2"]
    assert (q3_2["verdict"], q3_2["score"], q3_2["feedback"]) == ("partial", 1.0, body["feedback"])
    assert q3_2["person_grade"] == {
        "kind": "manual",
        "version": None,  # staff only
        "rubric": [
            {
                "item": 1,
                "description": "Non-differentiable, so no gradient reaches the queries and keys.",
                "points": 1.0,
                "applied": True,
                "comment": "Yes.",
            },
            {
                "item": 2,
                "description": "Cheap and interpretable.",
                "points": 1.0,
                "applied": False,
                "comment": "Interpretability?",
            },
        ],
    }
    staff = api.get("ta", f"/api/v1/submissions/{submission}").json()
    assert staff["questions"]["q3_2"]["person_grade"]["version"] == 1

    for bad in (
        {"rubric": [{"item": 3, "applied": True}], "version": 1},  # hw5's q3_2 has two items
        {"rubric": [{"item": 1, "applied": True}, {"item": 1, "applied": False}], "version": 1},
        {"score": 2.5, "version": 1},  # over the question's points
        {"feedback": "no score", "version": 1},
        {"score": 1, "feedback": "bad\u0000", "version": 1},
        {"score": -1, "version": 1},
    ):
        assert put_grade(api, "ta", submission, "q3_2", bad).status_code == 422, bad

    # A score given wins over the rubric's sum (a TA's judgement between items).
    changed = put_grade(api, "instructor", submission, "q3_2", body | {"score": 1.5}, **{"If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["score"] == 2.5
    assert put_grade(api, "ta", submission, "q3_2", {"score": 1}, **{"If-Match": "soon"}).status_code == 422
    disagreeing = put_grade(api, "ta", submission, "q3_2", {"score": 1, "version": 2}, **{"If-Match": '"1"'})
    assert disagreeing.status_code == 422


def test_a_stale_version_is_409_with_the_current_grade(api: Api) -> None:
    submission = submit_graded(api, "student", {"q3_2": {"text": Q3_2}})
    assert put_grade(api, "ta", submission, "q3_2", {"score": 1, "feedback": "first"}).status_code == 200
    # The second TA had read the queue before: no version, as if the answer were ungraded.
    blind = put_grade(api, "instructor", submission, "q3_2", {"score": 2})
    assert blind.status_code == 409
    current = blind.json()["error"]["details"]["current"]
    assert (current["score"], current["version"], current["graded_by"]) == (1.0, 1, "ta")
    assert put_grade(api, "ta", submission, "q3_2", {"score": 2, "version": 1}).status_code == 200
    stale = put_grade(api, "instructor", submission, "q3_2", {"score": 0, "version": 1})
    assert stale.status_code == 409
    assert stale.json()["error"]["details"]["current"]["version"] == 2
    assert api.get("ta", f"/api/v1/submissions/{submission}").json()["score"] == 2.0


def test_an_override_needs_a_reason_and_is_audited_and_deletable(api: Api) -> None:
    submission = submit_graded(api, "student", {"q1_1": {"choices": [2, 3]}, "q1_2": {"choices": [3]}})
    assert api.get("ta", f"/api/v1/submissions/{submission}").json()["score"] == 2.0
    for reasonless in ({"score": 0}, {"score": 0, "reason": "   "}):
        refused = put_grade(api, "ta", submission, "q1_1", reasonless)
        assert refused.status_code == 422
        assert refused.json()["error"]["details"] == {"reason": "required for an override"}

    overridden = put_grade(api, "ta", submission, "q1_1", {"score": 0, "reason": "Copied from a neighbour."})
    assert overridden.status_code == 200, overridden.text
    assert overridden.json()["score"] == 1.0
    q1_1 = overridden.json()["questions"]["q1_1"]
    assert (q1_1["verdict"], q1_1["person_grade"]["kind"]) == ("incorrect", "override")

    path = grade_path(submission, "q1_1")
    assert api.client.delete(path, headers=api.accounts.header("ta")).status_code == 422  # no reason
    blank = api.client.delete(f"{path}?reason=%20", headers=api.accounts.header("ta"))
    assert blank.status_code == 422
    stale = api.client.delete(f"{path}?reason=x", headers=api.accounts.header("ta") | {"If-Match": '"7"'})
    assert stale.status_code == 409
    cleared = api.client.delete(f"{path}?reason=Not+copied+after+all.", headers=api.accounts.header("ta"))
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["score"] == 2.0
    assert cleared.json()["questions"]["q1_1"]["person_grade"] is None
    assert api.client.delete(f"{path}?reason=again", headers=api.accounts.header("ta")).status_code == 404

    audit = api.get("ta", f"/api/v1/submissions/{submission}/audit").json()["items"]
    assert [
        (e["question"], e["actor"], e["action"], e["old_score"], e["new_score"], e["reason"]) for e in audit
    ] == [
        ("q1_1", "ta", "override", 1.0, 0.0, "Copied from a neighbour."),
        ("q1_1", "ta", "cleared", 0.0, 1.0, "Not copied after all."),
    ]
    assert audit[0]["student"] == "student"
    assert api.get("student", f"/api/v1/submissions/{submission}/audit").status_code == 403


def test_the_course_audit_pages_newest_first(api: Api) -> None:
    one = submit_graded(api, "student", {"q3_2": {"text": Q3_2}})
    two = submit_graded(api, "student2", {"q3_2": {"text": Q3_2}})
    for submission in (one, two):
        assert put_grade(api, "ta", submission, "q3_2", {"score": 1}).status_code == 200
    assert put_grade(api, "instructor", one, "q3_2", {"score": 2, "version": 1}).status_code == 200

    first = api.get("ta", "/api/v1/courses/demo/audit?limit=2").json()
    assert [(e["submission_id"], e["new_score"]) for e in first["items"]] == [(one, 2.0), (two, 1.0)]
    assert first["items"][0]["actor"] == "instructor"
    rest = api.get("ta", f"/api/v1/courses/demo/audit?limit=2&after={first['next']}").json()
    assert [(e["submission_id"], e["new_score"]) for e in rest["items"]] == [(one, 1.0)]
    assert rest["next"] is None
    assert api.get("other_ta", "/api/v1/courses/demo/audit").status_code == 404
    assert api.get("other_ta", "/api/v1/courses/other/audit").json()["items"] == []
    assert api.get("ta", "/api/v1/courses/nowhere/audit").status_code == 404


def test_the_audit_log_refuses_update_and_delete(api: Api, session_factory: sessionmaker[Session]) -> None:
    submission = submit_graded(api, "student", {"q3_2": {"text": Q3_2}})
    assert put_grade(api, "ta", submission, "q3_2", {"score": 1}).status_code == 200
    for statement in (
        update(GradeAuditEntry).values(new_score=2.0),
        text("DELETE FROM grade_audit"),
    ):
        with session_factory() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                session.execute(statement)
            session.rollback()
    with session_factory() as session:
        assert session.scalars(select(GradeAuditEntry.new_score)).all() == [1.0]


def _hold_grades(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, session.begin():
        assignment_id = session.scalars(select(Assignment.id).where(Assignment.slug == "hw5")).one()
        session.add(AssignmentPolicy(assignment_id=assignment_id, policy={"hold_grades": True}))


def test_results_json_is_gradescopes_format(api: Api, session_factory: sessionmaker[Session]) -> None:
    submission = submit_graded(api, "student", {"q1_1": {"choices": [2, 3]}, "q3_2": {"text": Q3_2}})
    path = f"/api/v1/submissions/{submission}/results.json"
    waiting = api.get("student", path).json()
    assert waiting["score"] == 1.0
    assert {t["name"]: t["output"] for t in waiting["tests"]}[
        "q3_2"
    ] == "Waiting for a TA to grade this answer."

    assert (
        put_grade(api, "ta", submission, "q3_2", {"score": 1.5, "feedback": "Half of 2."}).status_code == 200
    )
    with session_factory() as session, session.begin():
        session.execute(update(Submission).values(late_penalty=0.2, late_seconds=3600))
    results = api.get("student", path).json()
    assert results == {
        "score": 2.0,  # (1 + 1.5) * 0.8
        "output": "Late: 20 % taken from every score.",
        "visibility": "visible",
        "tests": [
            {"name": "q1_1", "score": 1.0, "max_score": 1.0, "output": "Correct.", "visibility": "visible"},
            {"name": "q3_2", "score": 1.5, "max_score": 2.0, "output": "Half of 2.", "visibility": "visible"},
        ],
    }
    assert api.get("student2", path).status_code == 403

    _hold_grades(session_factory)
    held = api.get("student", path)
    assert held.status_code == 403
    staff = api.get("ta", path).json()
    assert staff["visibility"] == "after_published"
    assert {t["visibility"] for t in staff["tests"]} == {"after_published"}


def test_a_students_history_shows_raw_effective_and_the_persons_grade(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    older = submit_graded(api, "student", {"q1_1": {"choices": [2, 3]}})
    newer = submit_graded(api, "student", {"q1_1": {"choices": [1]}, "q3_2": {"text": Q3_2}})
    submit_graded(api, "student2", {"q1_1": {"choices": [1]}})
    body = {"feedback": "Good.", "reason": "for the gradebook", "rubric": [{"item": 2, "applied": True}]}
    assert put_grade(api, "ta", newer, "q3_2", body).status_code == 200
    with session_factory() as session, session.begin():
        session.execute(update(Submission).where(Submission.id == uuid.UUID(older)).values(late_penalty=0.25))
    students = "/api/v1/courses/demo/assignments/hw5/students"
    path = f"{students}/student"

    own = api.get("student", path).json()
    assert [s["id"] for s in own["submissions"]] == [newer, older]
    newest, oldest = own["submissions"]
    assert newest["questions"]["q3_2"]["raw"] == 1.0
    # The person's grade decides the verdict, as in the submission view and the gradebook.
    assert newest["questions"]["q3_2"]["verdict"] == "partial"
    view = api.get("student", f"/api/v1/submissions/{newer}").json()
    assert view["questions"]["q3_2"]["verdict"] == "partial"
    assert newest["questions"]["q3_2"]["auto_score"] is None
    assert newest["questions"]["q3_2"]["manual"]["rubric"][1]["applied"] is True
    assert newest["questions"]["q3_2"]["manual"]["reason"] == ""  # the staff's note
    assert newest["questions"]["q1_1"]["raw"] == 0.0
    assert (oldest["score"], oldest["effective_score"]) == (1.0, 0.75)
    assert oldest["questions"]["q1_1"]["effective"] == 0.75
    staff = api.get("ta", path).json()
    assert staff["submissions"][0]["questions"]["q3_2"]["manual"]["reason"] == "for the gradebook"

    assert api.get("student2", path).status_code == 403
    assert api.get("student", f"{students}/nobody").status_code == 403
    assert api.get("ta", f"{students}/nobody").status_code == 404
    assert api.get("ta", f"{students}/outsider").status_code == 404

    _hold_grades(session_factory)
    held = api.get("student", path).json()
    assert held["grades_visible"] is False
    assert held["submissions"][0]["score"] is None
    assert held["submissions"][0]["questions"]["q3_2"] == {
        "verdict": None,
        "auto_score": None,
        "raw": None,
        "effective": None,
        "max_score": 2.0,
        "feedback": None,
        "manual": None,
        "hidden": None,
    }
    assert api.get("ta", path).json()["submissions"][0]["score"] == 1.0


def test_grading_before_the_submission_is_graded_is_409(api: Api) -> None:
    submission = api.submit("student", {"q3_2": {"text": Q3_2}}).json()["id"]
    assert put_grade(api, "ta", submission, "q3_2", {"score": 1}).status_code == 409
    api.grade_pending()
    assert put_grade(api, "ta", submission, "q3_3", {"score": 1}).status_code == 404
    assert put_grade(api, "ta", str(uuid.uuid4()), "q3_2", {"score": 1}).status_code == 404


@pytest.mark.parametrize("base_version", [None, 1])
def test_two_tas_racing_on_one_answer_one_gets_409(
    backend: str, tmp_path: Path, base_version: int | None
) -> None:
    """Real commits on separate connections: both TAs send at once; exactly one wins."""
    with scratch_service(backend, tmp_path) as service:
        tokens = service.tokens
        headers = {"Authorization": f"Bearer {tokens['student']}"}
        submitted = service.client.post(
            "/api/v1/courses/demo/assignments/hw5/submissions",
            json={"answers": {"q3_2": {"text": Q3_2}}},
            headers=headers,
        )
        runner = GradingRunner(service.session_factory, service.settings, "race", [Queue.CPU, Queue.GPU])
        while runner.run_once():
            pass
        path = grade_path(submitted.json()["id"], "q3_2")
        if base_version is not None:
            first = service.client.put(
                path, json={"score": 0}, headers={"Authorization": f"Bearer {tokens['ta']}"}
            )
            assert first.status_code == 200
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def grade(who: str, score: float) -> None:
            barrier.wait()
            response: httpx2.Response = service.client.put(
                path,
                json={"score": score, "version": base_version},
                headers={"Authorization": f"Bearer {tokens[who]}"},
            )
            statuses.append(response.status_code)

        threads = [threading.Thread(target=grade, args=args) for args in (("ta", 1.0), ("instructor", 2.0))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 409]
        audit = service.client.get(
            path.replace("/questions/q3_2/grade", "/audit"),
            headers={"Authorization": f"Bearer {tokens['ta']}"},
        ).json()["items"]
        assert len(audit) == (1 if base_version is None else 2)  # the loser left no trace
