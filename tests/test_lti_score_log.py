"""The staff's log of LTI score deliveries and its redeliver action: a score the LMS refused until
it was dead shows as dead with its attempts and last error, is redelivered on a fresh schedule and
then reaches the LMS (`lti1p3platform` on loopback) once; an older score than the student's latest,
or one of an assignment whose grades are now held, is not sent again. Real SQLite and PostgreSQL;
who may call it is in tests/test_authorization_matrix.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.lms.delivery import MAX_ATTEMPTS
from tests.conftest import Api
from tests.lti_platform import INSTRUCTOR, Platform
from tests.test_lti_passback import (
    ANSWERS,
    LMS_STUDENT,
    ags_launch,
    deliverer,
    drain,
    grade_q3,
    map_student,
    platform,  # noqa: F401 (the fixture)
)

LOG = "/api/v1/courses/demo/lti/score-deliveries"


def log(api: Api, **params: Any) -> dict[str, Any]:
    response = api.client.get(LOG, params=params, headers=api.accounts.header("ta"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def redeliver(api: Api, delivery: int) -> Any:
    return api.client.post(f"{LOG}/{delivery}/redeliver", headers=api.accounts.header("ta"))


def graded_submission(api: Api, lms: Platform) -> str:
    ags_launch(api, lms, "lms-teacher-1", [INSTRUCTOR])
    map_student(api)
    submission: str = api.submit("student", ANSWERS).json()["id"]
    api.grade_pending()
    return submission


def test_a_dead_score_is_logged_then_redelivered_once(
    api: Api,
    platform: Platform,  # noqa: F811
    session_factory: sessionmaker[Session],
) -> None:
    submission = graded_submission(api, platform)
    platform.failing_with = 503
    sender = deliverer(api)
    try:
        drain(sender, session_factory)
        (dead,) = log(api)["items"]
        assert dead["status"] == "dead"
        assert dead["attempts"] == MAX_ATTEMPTS
        assert dead["last_status_code"] == 503
        assert "503" in dead["last_error"]
        assert dead["next_attempt_at"] is None
        assert (dead["submission_id"], dead["assignment"]) == (submission, "hw5")
        assert (dead["student"], dead["lms_user_id"]) == ("student", LMS_STUDENT)
        assert dead["event_type"] == "submission.graded"
        assert platform.scores == []

        answered = redeliver(api, dead["id"])
        assert answered.status_code == 202, answered.text
        queued = answered.json()
        assert (queued["id"], queued["status"], queued["attempts"]) == (dead["id"], "pending", 0)
        assert queued["next_attempt_at"] is not None
        assert queued["last_error"] == dead["last_error"]  # the history stays until the next attempt

        platform.failing_with = None
        drain(sender, session_factory)
    finally:
        sender.close()
    (delivered,) = log(api)["items"]
    assert (delivered["status"], delivered["attempts"], delivered["last_error"]) == ("delivered", 1, None)
    assert delivered["delivered_at"] is not None
    ((_, score),) = platform.scores
    assert score["userId"] == LMS_STUDENT
    assert score["scoreGiven"] == delivered["score_given"]
    assert score["scoreMaximum"] == delivered["score_maximum"]


def test_the_log_pages_newest_first_and_only_the_latest_score_is_redelivered(
    api: Api,
    platform: Platform,  # noqa: F811
) -> None:
    submission = graded_submission(api, platform)
    grade_q3(api, submission, 0.5)
    grade_q3(api, submission, 1.0, version=1)

    first = log(api, limit=2)
    assert len(first["items"]) == 2
    assert first["next"] == first["items"][-1]["id"]
    rest = log(api, limit=2, before=first["next"])
    assert rest["next"] is None
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 3
    newest, oldest = ids[0], ids[-1]

    # Sent again with a fresh timestamp, the older score would overwrite the newer grade in the LMS.
    superseded = redeliver(api, oldest)
    assert superseded.status_code == 409
    assert superseded.json()["error"]["code"] == "conflict"
    assert log(api, limit=3)["items"][-1]["status"] == "pending"  # untouched: never attempted
    assert redeliver(api, newest).status_code == 202
    missing = redeliver(api, 2_147_483_647)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_no_score_is_redelivered_while_the_grades_are_held(
    api: Api,
    platform: Platform,  # noqa: F811
) -> None:
    graded_submission(api, platform)
    (score,) = log(api)["items"]
    held = api.client.put(
        "/api/v1/courses/demo/assignments/hw5/policy",
        json={"hold_grades": True},
        headers=api.accounts.header("instructor"),
    )
    assert held.status_code == 200, held.text
    refused = redeliver(api, score["id"])
    assert refused.status_code == 409
    assert "held" in refused.json()["error"]["message"]
