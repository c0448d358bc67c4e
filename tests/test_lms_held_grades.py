"""Held grades are held back from the LMS (docs/lms.md): while an assignment's policy holds its
grades, the outbound webhook events carry no score and no LTI score is queued; the release sends
each student's score once, through the outbox. The LTI passback sends the gradebook's counted
score (`counts` = last or best), not the score of whichever submission changed. Against
`lti1p3platform` as the LMS on loopback; real SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.models import LtiScoreDelivery
from service.models.lms import OutboxEvent
from tests.conftest import Api
from tests.lti_platform import INSTRUCTOR, Platform
from tests.test_lti_passback import (
    ANSWERS,
    ags_launch,
    deliverer,
    drain,
    map_student,
    platform,  # noqa: F401 (the fixture)
)

BASE = "/api/v1/courses/demo/assignments/hw5"
WRONG = {"q1_1": {"choices": [1]}}


def set_policy(api: Api, policy: dict[str, Any]) -> None:
    response = api.client.put(f"{BASE}/policy", json=policy, headers=api.accounts.header("instructor"))
    assert response.status_code == 200, response.text


def subscribe(api: Api) -> None:
    created = api.client.post(
        "/api/v1/courses/demo/webhooks",
        json={"url": "https://lms.example.edu/hooks", "events": ["submission.graded", "grade.changed"]},
        headers=api.accounts.header("instructor"),
    )
    assert created.status_code == 201, created.text


def events(session_factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    """The webhook bodies in the outbox, oldest first: what every subscriber is sent, verbatim."""
    with session_factory() as session:
        return list(session.scalars(select(OutboxEvent.payload).order_by(OutboxEvent.id)))


def passbacks(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return len(session.scalars(select(LtiScoreDelivery.id)).all())


def test_held_grades_reach_no_lms_until_released_then_once(
    api: Api,
    platform: Platform,  # noqa: F811
    session_factory: sessionmaker[Session],
) -> None:
    set_policy(api, {"hold_grades": True})
    subscribe(api)
    ags_launch(api, platform, "lms-teacher-1", [INSTRUCTOR])
    map_student(api)
    submission = api.submit("student", ANSWERS).json()["id"]
    api.grade_pending()

    (graded,) = events(session_factory)
    assert graded["type"] == "submission.graded"
    data = graded["data"]
    assert data["submission_id"] == submission
    assert data["grades_held"] is True
    assert (data["score"], data["effective_score"], data["gradebook"]) == (None, None, None)
    assert {(q["score"], q["verdict"]) for q in data["questions"]} == {(None, None)}
    assert passbacks(session_factory) == 0  # nothing for the LMS gradebook while held

    released = api.client.post(f"{BASE}/release", headers=api.accounts.header("ta"))
    assert released.status_code == 200, released.text
    staff_view = api.get("ta", f"/api/v1/submissions/{submission}").json()
    _, changed = events(session_factory)
    assert changed["type"] == "grade.changed"
    assert changed["data"]["grades_held"] is False
    assert changed["data"]["effective_score"] == staff_view["effective_score"]
    assert changed["data"]["gradebook"]["score"] == staff_view["effective_score"]
    assert passbacks(session_factory) == 1
    # Releasing what is released already sends nothing again.
    assert api.client.post(f"{BASE}/release", headers=api.accounts.header("ta")).status_code == 200
    assert len(events(session_factory)) == 2
    assert passbacks(session_factory) == 1

    sender = deliverer(api)
    try:
        drain(sender, session_factory)
    finally:
        sender.close()
    ((_, score),) = platform.scores
    assert score["scoreGiven"] == staff_view["effective_score"]
    assert score["gradingProgress"] == "PendingManual"  # q3_2 still waits for a TA


def test_the_passback_sends_the_gradebooks_counted_score(
    api: Api,
    platform: Platform,  # noqa: F811
    session_factory: sessionmaker[Session],
) -> None:
    """Under `counts = "best"` a worse later submission leaves the gradebook's total as it was:
    the LMS is sent that total, not the later submission's own score."""
    set_policy(api, {"counts": "best"})
    ags_launch(api, platform, "lms-teacher-1", [INSTRUCTOR])
    map_student(api)
    first = api.submit("student", ANSWERS).json()["id"]
    api.grade_pending()
    second = api.submit("student", WRONG).json()["id"]
    api.grade_pending()
    sender = deliverer(api)
    try:
        drain(sender, session_factory)
    finally:
        sender.close()
    better = api.get("ta", f"/api/v1/submissions/{first}").json()["effective_score"]
    worse = api.get("ta", f"/api/v1/submissions/{second}").json()["effective_score"]
    assert better > worse
    gradebook = api.get("ta", f"{BASE}/gradebook").json()
    (row,) = [row for row in gradebook["rows"] if row["student"] == "student"]
    sent = [score["scoreGiven"] for _, score in platform.scores]
    assert sent == [better, row["total"]]
    assert row["total"] == better
