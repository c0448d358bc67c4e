"""LTI Assignment and Grade Services passback against `lti1p3platform` as the LMS on loopback: the
launch's AGS claim names where scores go, grading and a TA's grade queue a score in the outbox, and
the delivery loop sends it: an access token for a JWT assertion signed with the tool's key (which
lti1p3platform checks against the tool's JWKS; cached), the line item created once, the effective
score with FullyGraded or PendingManual and timestamps increasing per (student, line item). Faults:
the platform failing (retried, then dead), a restart between grading and delivery (the end to end
test with the outbound webhook, tests/test_lms_end_to_end.py). Real SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.lms.delivery import MAX_ATTEMPTS, PassbackDeliverer
from service.lti import service as lti_service
from service.lti.passback import LtiScoreSender
from service.models import LtiLineItem, LtiScoreDelivery
from service.models.lms import OutboxEvent
from tests.conftest import Api
from tests.lti_platform import INSTRUCTOR, LEARNER, Platform, running_platform
from tests.test_lti import full_launch, launch, login

ANSWERS = {"q1_1": {"choices": [2, 3]}, "q3_2": {"text": "Vanishing gradients."}}
LMS_STUDENT = "lms-student-7"


@pytest.fixture
def platform(api: Api, settings: Settings) -> Iterator[Platform]:
    with running_platform(settings.public_url + lti_service.LAUNCH_PATH) as platform:
        response = api.client.put(
            "/api/v1/courses/demo/lti/platform",
            json=platform.registration_body(),
            headers=api.accounts.header("instructor"),
        )
        assert response.status_code == 200, response.text
        platform.trust_tool_keys(api.client.get("/.well-known/jwks.json").json())
        yield platform


def ags_launch(api: Api, platform: Platform, user_id: str, roles: list[str]) -> None:
    form = platform.launch_form(
        login(api, platform, user_id), user_id, roles, {"assignment": "hw5"}, ags=True
    )
    response = launch(api, form)
    assert response.status_code == 200, response.text


def map_student(api: Api) -> None:
    """The seeded student, known to the LMS as LMS_STUDENT (as a launch or an enrollment maps it)."""
    response = api.client.put(
        f"/api/v1/courses/demo/lms/users/{LMS_STUDENT}",
        json={"username": "student"},
        headers=api.accounts.header("ta"),
    )
    assert response.status_code == 200, response.text


def deliverer(api: Api, **changes: Any) -> PassbackDeliverer:
    settings: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    settings = settings.model_copy(
        update={"webhook_retry_scale": 0.00002, "lti_http_timeout_seconds": 2.0} | changes
    )
    factory = api.client.app.state.session_factory  # type: ignore[attr-defined]
    return PassbackDeliverer(factory, settings, "worker-a", LtiScoreSender(factory, settings))


def drain(deliverer: PassbackDeliverer, session_factory: sessionmaker[Session], until: float = 20.0) -> None:
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        if deliverer.run_once() == 0:
            with session_factory() as session:
                pending = session.scalars(
                    select(LtiScoreDelivery.id).where(LtiScoreDelivery.status == "pending")
                ).all()
            if not pending:
                return
            time.sleep(0.02)
    raise AssertionError("score passbacks still pending")


def grade_q3(api: Api, submission: str, score: float, version: int | None = None) -> None:
    response = api.client.put(
        f"/api/v1/submissions/{submission}/questions/q3_2/grade",
        json={"score": score, "reason": "read by a TA", "version": version},
        headers=api.accounts.header("ta"),
    )
    assert response.status_code == 200, response.text


def test_the_effective_score_reaches_the_lms_gradebook_pending_then_fully_graded(
    api: Api, platform: Platform, session_factory: sessionmaker[Session]
) -> None:
    ags_launch(api, platform, "lms-teacher-1", [INSTRUCTOR])  # the launch tells where scores go
    map_student(api)
    submission = api.submit("student", ANSWERS).json()["id"]
    api.grade_pending()
    sender = deliverer(api)
    try:
        drain(sender, session_factory)
        graded = api.get("student", f"/api/v1/submissions/{submission}").json()
        grade_q3(api, submission, 1.0)
        drain(sender, session_factory)
    finally:
        sender.close()
    changed = api.get("student", f"/api/v1/submissions/{submission}").json()

    (item,) = platform.line_items.values()  # created once, found by the stored URL after
    assert item["resourceId"] == "hw5"
    assert item["resourceLinkId"] == "resource-link-1"
    assert item["scoreMaximum"] == graded["max_score"]
    assert platform.tokens_issued == 1  # the token is cached until it expires
    first, second = (score for _, score in platform.scores)
    assert first["userId"] == second["userId"] == LMS_STUDENT
    assert first["activityProgress"] == second["activityProgress"] == "Completed"
    assert first["gradingProgress"] == "PendingManual"  # q3_2 waits for a TA
    assert second["gradingProgress"] == "FullyGraded"
    assert first["scoreGiven"] == pytest.approx(graded["effective_score"])
    assert second["scoreGiven"] == pytest.approx(changed["effective_score"])
    assert second["scoreGiven"] > first["scoreGiven"]
    assert first["scoreMaximum"] == graded["max_score"]
    assert datetime.fromisoformat(second["timestamp"]) > datetime.fromisoformat(first["timestamp"])
    with session_factory() as session:
        line_item = session.scalars(select(LtiLineItem)).one()
        assert line_item.lineitem_url == item["id"]
        assert {row.status for row in session.scalars(select(LtiScoreDelivery))} == {"delivered"}


def test_nothing_is_queued_for_a_student_the_lms_does_not_know(
    api: Api, platform: Platform, session_factory: sessionmaker[Session]
) -> None:
    ags_launch(api, platform, "lms-teacher-1", [INSTRUCTOR])
    api.submit("student", ANSWERS)
    api.grade_pending()
    with session_factory() as session:
        assert session.scalars(select(LtiScoreDelivery)).all() == []


def test_one_grading_batch_queues_a_score_for_each_known_student_and_none_for_the_others(
    api: Api, platform: Platform, session_factory: sessionmaker[Session]
) -> None:
    """The outbox is decided once per batch (the facts, subscriptions and LTI targets of all its
    submissions together): the result is what one submission at a time gave."""
    ags_launch(api, platform, "lms-teacher-1", [INSTRUCTOR])
    map_student(api)
    mapped = [api.submit("student", ANSWERS).json()["id"] for _ in range(2)]
    unknown = api.submit("student2", ANSWERS).json()["id"]
    assert api.runner.run_once() == 3  # one batch
    with session_factory() as session:
        queued = session.execute(
            select(LtiScoreDelivery.lms_user_id, OutboxEvent.submission_id)
            .join(OutboxEvent, OutboxEvent.id == LtiScoreDelivery.event_id)
            .order_by(OutboxEvent.id)
        ).all()
    assert [(user, str(submission)) for user, submission in queued] == [
        (LMS_STUDENT, submission) for submission in sorted(mapped)
    ]
    assert unknown not in {str(submission) for _, submission in queued}


def test_a_student_who_launched_gets_scores_under_their_lti_id(
    api: Api, platform: Platform, session_factory: sessionmaker[Session]
) -> None:
    """The launch maps the LMS user to a new local user; that user's submission goes back to the
    LMS under the launch's `sub`, on the line item the launch named."""
    ags_launch(api, platform, LMS_STUDENT, [LEARNER])
    with session_factory() as session:
        assert session.scalars(select(LtiLineItem.lineitems_url)).one() == platform.lineitems_url
    response = full_launch(api, platform, LMS_STUDENT, [LEARNER], assignment="hw5")
    assert response.status_code == 200
    assert platform.scores == []


def test_a_failing_platform_is_retried_then_the_score_is_dead(
    api: Api, platform: Platform, session_factory: sessionmaker[Session]
) -> None:
    ags_launch(api, platform, "lms-teacher-1", [INSTRUCTOR])
    map_student(api)
    api.submit("student", ANSWERS)
    api.grade_pending()
    platform.failing_with = 503
    sender = deliverer(api)
    try:
        assert sender.run_once() == 1
        with session_factory() as session:
            row = session.scalars(select(LtiScoreDelivery)).one()
            assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 503)
            assert "503" in (row.last_error or "")
        drain(sender, session_factory)
    finally:
        sender.close()
    with session_factory() as session:
        row = session.scalars(select(LtiScoreDelivery)).one()
        assert (row.status, row.attempts) == ("dead", MAX_ATTEMPTS)
    assert platform.scores == []


def test_a_platform_back_up_gets_each_score_once_in_order(
    api: Api, platform: Platform, session_factory: sessionmaker[Session]
) -> None:
    ags_launch(api, platform, "lms-teacher-1", [INSTRUCTOR])
    map_student(api)
    submission = api.submit("student", ANSWERS).json()["id"]
    api.grade_pending()
    grade_q3(api, submission, 0.5)
    grade_q3(api, submission, 1.0, version=1)
    platform.failing_with = 500
    sender = deliverer(api)
    try:
        for _ in range(3):  # the first fails again and again; the later scores wait behind it
            assert sender.run_once() == 1
        with session_factory() as session:
            attempts = [
                row.attempts
                for row in session.scalars(select(LtiScoreDelivery).order_by(LtiScoreDelivery.id))
            ]
        assert attempts == [3, 0, 0]
        platform.failing_with = None
        drain(sender, session_factory)
    finally:
        sender.close()
    progress = [score["gradingProgress"] for _, score in platform.scores]
    assert progress == ["PendingManual", "FullyGraded", "FullyGraded"]
    stamps = [datetime.fromisoformat(score["timestamp"]) for _, score in platform.scores]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 3
