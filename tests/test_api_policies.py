"""Policies through the API on SQLite and PostgreSQL: the course's override, deadlines and the late
rule at submit, attempt limits, extensions, held grades and their release (docs/grading-policy.md)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.assignments.material import read_material
from service.assignments.service import load_assignment
from service.models import GradingJob
from service.policies.service import remeasure_after_load
from tests.conftest import HW5_FOLDER, Api

BASE = "/api/v1/courses/demo/assignments/hw5"
RIGHT = {"q1_1": {"choices": [2, 3]}}
INVALID = {"q1_1": {"choices": [2, 2]}}  # a repeated pick: graded invalid, costs no attempt


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _now() -> datetime:
    return datetime.now(UTC)


def put_policy(api: Api, policy: dict[str, Any], who: str = "ta") -> httpx2.Response:
    return api.client.put(f"{BASE}/policy", json=policy, headers=api.accounts.header(who))


def set_policy(api: Api, policy: dict[str, Any]) -> dict[str, Any]:
    response = put_policy(api, policy)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def submission(api: Api, who: str, response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    view = api.get(who, response.headers["location"])
    assert view.status_code == 200
    body: dict[str, Any] = view.json()
    return body


def test_the_material_policy_applies_until_the_course_sets_its_own(api: Api) -> None:
    read = api.get("student", f"{BASE}/policy").json()
    assert read["source"] == "material"
    assert read["policy"]["counts"] == "last"
    assert read["grades_visible_to_students"] is True

    due = datetime(2030, 6, 1, 23, 59)
    body = set_policy(api, {"timezone": "Europe/Berlin", "due_at": due.isoformat(), "counts": "best"})
    assert body["source"] == "course"
    # Read in the policy's zone and kept with its offset.
    assert body["policy"]["due_at"] == "2030-06-01T23:59:00+02:00"
    assert api.get("student", f"{BASE}/policy").json()["policy"]["counts"] == "best"

    reset = api.client.delete(f"{BASE}/policy", headers=api.accounts.header("instructor"))
    assert reset.status_code == 200
    assert reset.json()["source"] == "material"
    assert reset.json()["policy"].get("due_at") is None


def test_late_submissions_carry_their_penalty_and_why(api: Api) -> None:
    # Due 30 hours ago: two days started, 10 % each.
    set_policy(
        api,
        {"due_at": _iso(_now() - timedelta(hours=30)), "late": {"penalty_percent": 10, "cutoff_hours": 96}},
    )
    response = api.submit("student", RIGHT)
    api.grade_pending()
    view = submission(api, "student", response)
    lateness = view["lateness"]
    assert 30 * 3600 <= lateness["late_seconds"] < 31 * 3600
    assert lateness["penalty"] == 0.2
    assert lateness["why"] == "2 days started late: -20 %"
    assert lateness["extended"] is False
    assert view["score"] == 1.0
    assert view["effective_score"] == 0.8
    listed = api.get("student", f"{BASE}/submissions").json()["items"][0]
    assert (listed["score"], listed["effective_score"], listed["late_penalty"]) == (1.0, 0.8, 0.2)


def test_not_open_deadline_and_cutoff_refuse_with_a_clear_code(api: Api) -> None:
    set_policy(api, {"timezone": "America/New_York", "opens_at": _iso(_now() + timedelta(days=1))})
    early = api.submit("student", RIGHT)
    assert early.status_code == 403
    assert early.json()["error"]["code"] == "not_open"
    assert "-04:00" in early.json()["error"]["message"] or "-05:00" in early.json()["error"]["message"]

    set_policy(api, {"timezone": "Asia/Tokyo", "due_at": _iso(_now() - timedelta(minutes=5))})
    late = api.submit("student", RIGHT)
    assert late.status_code == 403
    assert late.json()["error"]["code"] == "deadline_passed"
    assert "+09:00" in late.json()["error"]["message"]

    set_policy(
        api,
        {"due_at": _iso(_now() - timedelta(hours=3)), "late": {"penalty_percent": 5, "cutoff_hours": 2}},
    )
    past_cutoff = api.submit("student", RIGHT)
    assert past_cutoff.status_code == 403
    assert past_cutoff.json()["error"]["code"] == "deadline_passed"
    assert "late submissions closed" in past_cutoff.json()["error"]["message"]
    # Staff submissions are test runs: never refused, never late.
    staff = submission(api, "ta", api.submit("ta", RIGHT))
    assert staff["lateness"]["late_seconds"] == 0


def test_attempts_count_graded_and_ungraded_answers_but_not_invalid_ones(api: Api) -> None:
    set_policy(api, {"question_attempts": {"q1_1": 2}})
    assert api.submit("student", INVALID).status_code == 202
    api.grade_pending()
    assert api.submit("student", RIGHT).status_code == 202  # the invalid one used nothing
    api.grade_pending()
    assert api.submit("student", RIGHT | {"q1_2": {"choices": [1]}}).status_code == 202  # not graded yet
    refused = api.submit("student", RIGHT)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "attempt_limit_reached"
    assert error["details"] == {"questions": {"q1_1": {"limit": 2, "used": 2}}}
    # Other questions and other students are not limited.
    assert api.submit("student", {"q1_2": {"choices": [1]}}).status_code == 202
    assert api.submit("student2", RIGHT).status_code == 202


def test_a_submission_limit_counts_submissions_with_a_countable_answer(api: Api) -> None:
    set_policy(api, {"max_submissions": 1})
    assert api.submit("student", INVALID).status_code == 202
    api.grade_pending()
    assert api.submit("student", RIGHT).status_code == 202
    refused = api.submit("student", {"q1_2": {"choices": [1]}})
    assert refused.status_code == 409
    assert refused.json()["error"]["details"] == {"submissions": {"limit": 1, "used": 1}}


def test_policy_and_extension_changes_measure_submissions_again(api: Api) -> None:
    on_time = api.submit("student", RIGHT)
    other = api.submit("student2", RIGHT)
    api.grade_pending()
    assert submission(api, "student", on_time)["lateness"]["penalty"] == 0.0

    # The course moves the due time before these submissions: both are now a day started late.
    set_policy(
        api,
        {"due_at": _iso(_now() - timedelta(hours=1)), "late": {"penalty_percent": 25, "cutoff_hours": 48}},
    )
    assert submission(api, "student", on_time)["lateness"]["penalty"] == 0.25
    assert submission(api, "student2", other)["lateness"]["penalty"] == 0.25

    extended = api.client.put(
        f"{BASE}/extensions/student",
        json={"due_at": _iso(_now() + timedelta(days=2)), "reason": "ill"},
        headers=api.accounts.header("ta"),
    )
    assert extended.status_code == 200, extended.text
    assert extended.json()["granted_by"] == "ta"
    view = submission(api, "student", on_time)
    assert (view["lateness"]["penalty"], view["lateness"]["extended"]) == (0.0, True)
    assert view["effective_score"] == 1.0
    # Only that student's.
    assert submission(api, "student2", other)["lateness"]["penalty"] == 0.25
    assert api.get("student", f"{BASE}/policy").json()["your_due_at"] is not None
    listed = api.get("ta", f"{BASE}/extensions").json()["items"]
    assert [(item["student"], item["reason"]) for item in listed] == [("student", "ill")]

    removed = api.client.delete(f"{BASE}/extensions/student", headers=api.accounts.header("ta"))
    assert removed.status_code == 204
    assert submission(api, "student", on_time)["lateness"]["penalty"] == 0.25
    again = api.client.delete(f"{BASE}/extensions/student", headers=api.accounts.header("ta"))
    assert again.status_code == 404


def test_an_extension_lets_a_student_submit_after_the_deadline(api: Api) -> None:
    set_policy(api, {"due_at": _iso(_now() - timedelta(hours=1))})
    assert api.submit("student", RIGHT).status_code == 403
    api.client.put(
        f"{BASE}/extensions/student",
        json={"due_at": _iso(_now() + timedelta(hours=1))},
        headers=api.accounts.header("instructor"),
    )
    assert api.submit("student", RIGHT).status_code == 202
    assert api.submit("student2", RIGHT).status_code == 403


def test_held_grades_reach_students_only_once_released(api: Api) -> None:
    set_policy(api, {"hold_grades": True})
    response = api.submit("student", RIGHT)
    api.grade_pending()
    held = submission(api, "student", response)
    assert held["grades_held"] is True
    assert (held["score"], held["effective_score"], held["questions"]) == (None, None, {})
    assert held["status"] == "graded"
    assert api.get("student", f"{BASE}/submissions").json()["items"][0]["score"] is None
    staff = api.get("ta", response.headers["location"]).json()
    assert (staff["score"], staff["grades_held"]) == (1.0, False)
    assert staff["questions"]["q1_1"]["verdict"] == "correct"

    released = api.client.post(f"{BASE}/release", headers=api.accounts.header("ta"))
    assert released.status_code == 200
    assert released.json()["released_at"] is not None
    shown = submission(api, "student", response)
    assert (shown["score"], shown["grades_held"]) == (1.0, False)
    assert shown["questions"]["q1_1"]["verdict"] == "correct"

    withheld = api.client.delete(f"{BASE}/release", headers=api.accounts.header("ta"))
    assert withheld.json()["released_at"] is None
    assert submission(api, "student", response)["score"] is None


def test_students_cannot_change_policies_and_bad_policies_are_422(api: Api) -> None:
    assert put_policy(api, {"counts": "best"}, who="student").status_code == 403
    assert api.client.post(f"{BASE}/release", headers=api.accounts.header("student")).status_code == 403
    assert put_policy(api, {"counts": "best"}, who="other_ta").status_code == 404
    for bad in (
        {"question_attempts": {"q9": 1}},
        {"timezone": "Mars/Olympus"},
        {"timezone": "a" * 5000},
        {"due_at": "0001-01-01T00:00:00"},
        {"due_at": "9999-12-31T23:59:59"},
        {"opens_at": "2030-01-02T00:00:00", "due_at": "2030-01-01T00:00:00"},
        {"late": {"penalty_percent": 101}},
        {"max_attempts": 0},
        {"unknown": 1},
    ):
        response = put_policy(api, bad)
        assert response.status_code == 422, (bad, response.text)
    extension = {"due_at": "2030-01-01T00:00:00"}
    for username in ("nobody", "ta", "outsider"):
        response = api.client.put(
            f"{BASE}/extensions/{username}", json=extension, headers=api.accounts.header("ta")
        )
        assert response.status_code == 404, username
    nul = api.client.put(
        f"{BASE}/extensions/student",
        json=extension | {"reason": "a\u0000b"},
        headers=api.accounts.header("ta"),
    )
    assert nul.status_code == 422


def load_hw5_with_policy(session_factory: sessionmaker[Session], folder: Path, policy: str) -> None:
    """Version 2 of hw5 in course demo, its material with a `[policy]` table, loaded as the CLI's
    `assignments load` does (the stored lateness measured again)."""
    shutil.copytree(HW5_FOLDER, folder)
    with (folder / "assignment.toml").open("a") as toml:
        toml.write(f"\n[policy]\n{policy}\n")
    with session_factory() as session:
        outcome = load_assignment(session, "demo", read_material(folder))
        assert outcome.version == 2
        remeasure_after_load(session, "demo", outcome.slug)
        session.commit()


def test_a_new_versions_material_policy_holds_the_grades_of_older_submissions(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    response = api.submit("student", RIGHT)
    api.grade_pending()
    path = response.headers["location"]
    assert submission(api, "student", response)["score"] == 1.0

    load_hw5_with_policy(session_factory, tmp_path / "hw5", "hold_grades = true")

    assert api.get("student", f"{BASE}/policy").json()["grades_visible_to_students"] is False
    view = api.get("student", path).json()
    assert view["grades_held"] is True
    assert (view["score"], view["questions"]) == (None, {})
    assert api.get("student", f"{path}/results.json").status_code == 403
    assert api.get("ta", path).json()["score"] == 1.0


def test_a_new_versions_material_deadline_measures_older_submissions_again(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    response = api.submit("student", RIGHT)
    api.grade_pending()
    assert submission(api, "student", response)["lateness"]["penalty"] == 0.0

    due = (_now() - timedelta(hours=30)).isoformat()
    late = "late = { penalty_percent = 10, cutoff_hours = 96 }"
    load_hw5_with_policy(session_factory, tmp_path / "hw5", f'due_at = "{due}"\n{late}')

    view = submission(api, "student", response)
    assert view["lateness"]["penalty"] == 0.2
    assert view["lateness"]["why"] == "2 days started late: -20 %"
    assert view["effective_score"] == 0.8
    cell = api.get("ta", f"{BASE}/gradebook").json()["rows"][0]["questions"]["q1_1"]
    assert (cell["penalty"], cell["score"], cell["late"]) == (0.2, 0.8, True)


def test_an_answer_regraded_before_its_first_grading_uses_one_attempt_not_two(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """A regrade's revision may be stored while the submission's first job still waits: the answer
    has a current result and a queued first job, and is one attempt."""
    set_policy(api, {"max_attempts": 2})
    first = api.submit("student", RIGHT)
    assert first.status_code == 202
    load_hw5_with_policy(session_factory, tmp_path / "hw5", "max_attempts = 2")
    regrade = api.client.post(f"{BASE}/regrades", json={}, headers=api.accounts.header("ta"))
    assert regrade.status_code == 202
    with session_factory() as session:
        job = session.scalars(select(GradingJob.id).where(GradingJob.revision == 2)).one()
    assert api.runner.run_job(job)  # the regrade lands; the first grading is still queued

    second = api.submit("student", RIGHT)
    assert second.status_code == 202, second.text
    third = api.submit("student", RIGHT)
    assert third.status_code == 409
    assert third.json()["error"]["details"]["questions"]["q1_1"] == {"limit": 2, "used": 2}
