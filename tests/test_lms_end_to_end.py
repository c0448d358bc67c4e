"""The LMS integration's "done when", end to end on real commits (SQLite and PostgreSQL): a student
launches the assignment from the LMS (lti1p3platform on loopback, with Assignment and Grade
Services); the LMS submits for them with a signed event (Standard Webhooks); the submission is
graded by a process that is then gone; a new process delivers, and the score reaches the LMS once
through the outbound webhook (a receiver verifying with standardwebhooks and svix) and once through
AGS passback (lti1p3platform checking the tool's token and storing the score). Running the delivery
process again sends nothing more."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import standardwebhooks.webhooks
from starlette.testclient import TestClient

from service.db import make_engine, make_session_factory
from service.grading.runner import GradingRunner
from service.lti import service as lti_service
from service.models import Queue
from tests.conftest import REPOSITORY_ROOT, scratch_service
from tests.lti_platform import LEARNER, Platform, running_platform
from tests.test_webhooks import Receiver

TOOL = "https://testserver"
LMS_STUDENT = "lms-student-7"
ANSWERS = {"q1_1": {"choices": [2, 3]}, "q1_2": {"choices": [3]}}

DELIVER_IN_A_NEW_PROCESS = """
import sys
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.lms.delivery import PassbackDeliverer, WebhookDeliverer
from service.lti.passback import LtiScoreSender
settings = Settings(database_url=sys.argv[1], local_workers=0)
engine = make_engine(settings)
factory = make_session_factory(engine)
for deliverer in (
    WebhookDeliverer(factory, settings, "restarted-worker"),
    PassbackDeliverer(factory, settings, "restarted-worker", LtiScoreSender(factory, settings)),
):
    print(deliverer.run_until_idle())
    deliverer.close()
engine.dispose()
"""


def _student_launch(client: TestClient, platform: Platform) -> None:
    initiation = urlsplit(platform.login_initiation(TOOL + lti_service.LOGIN_PATH, LMS_STUDENT))
    login = client.get(f"{TOOL}{initiation.path}?{initiation.query}", follow_redirects=False)
    assert login.status_code == 302, login.text
    form = platform.launch_form(
        login.headers["location"], LMS_STUDENT, [LEARNER], {"assignment": "hw5"}, ags=True
    )
    launched = client.post(
        TOOL + lti_service.LAUNCH_PATH, data={"id_token": form["id_token"], "state": form["state"]}
    )
    assert launched.status_code == 200, launched.text


def _signed_event(client: TestClient, secret: str, payload: dict[str, Any]) -> Any:
    body, msg_id, now = json.dumps(payload), f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.webhooks.Webhook(secret).sign(msg_id, now, body),
    }
    return client.post("/api/v1/lms/events", content=body, headers=headers)


def test_a_signed_lms_submission_is_graded_and_its_score_reaches_the_lms_both_ways_across_a_restart(
    backend: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    receiver.start()
    try:
        with scratch_service(backend, tmp_path) as service:
            client = service.client
            instructor = {"Authorization": f"Bearer {service.tokens['instructor']}"}
            with running_platform(service.settings.public_url + lti_service.LAUNCH_PATH) as platform:
                # The instructor links the course: the LMS, a webhook, the inbound secret, the ids.
                registered = client.put(
                    "/api/v1/courses/demo/lti/platform", json=platform.registration_body(), headers=instructor
                )
                assert registered.status_code == 200, registered.text
                platform.trust_tool_keys(client.get("/.well-known/jwks.json").json())
                hook = client.post(
                    "/api/v1/courses/demo/webhooks",
                    json={"url": receiver.url, "events": ["submission.graded", "grade.changed"]},
                    headers=instructor,
                )
                receiver.secret = hook.json()["secret"]
                secret = client.put("/api/v1/courses/demo/lms/inbound-secret", headers=instructor).json()[
                    "secret"
                ]
                mapped = client.put(
                    "/api/v1/courses/demo/lms/assignments/lms-hw5",
                    json={"assignment": "hw5"},
                    headers=instructor,
                )
                assert mapped.status_code == 200, mapped.text

                _student_launch(client, platform)  # maps LMS_STUDENT; the AGS claim names the line items
                submitted = _signed_event(
                    client,
                    secret,
                    {
                        "type": "submission.created",
                        "timestamp": datetime.now(UTC).isoformat(),
                        "data": {
                            "course": "demo",
                            "user": LMS_STUDENT,
                            "assignment": "lms-hw5",
                            "answers": ANSWERS,
                        },
                    },
                )
                assert submitted.status_code == 200, submitted.text
                submission = submitted.json()["submission"]["id"]

                engine = make_engine(service.settings)
                try:
                    runner = GradingRunner(
                        make_session_factory(engine), service.settings, "first-process", list(Queue)
                    )
                    assert runner.run_once() == 1
                finally:
                    engine.dispose()  # the grading process is gone; nothing was sent
                assert receiver.received == []
                assert platform.scores == []

                for _ in range(2):  # the restarted worker delivers; a second run finds nothing more
                    subprocess.run(
                        [sys.executable, "-c", DELIVER_IN_A_NEW_PROCESS, service.settings.database_url],
                        check=True,
                        cwd=REPOSITORY_ROOT,
                        timeout=120,
                        capture_output=True,
                    )

                view = client.get(f"/api/v1/submissions/{submission}", headers=instructor).json()
                assert receiver.refused == []
                (received,) = receiver.received
                assert received.event_type == "submission.graded"
                assert received.data["submission_id"] == submission
                assert received.data["student"] == view["student"]
                assert received.data["effective_score"] == view["effective_score"]
                ((_, score),) = platform.scores
                assert score["userId"] == LMS_STUDENT
                assert score["scoreGiven"] == view["effective_score"] > 0
                assert score["scoreMaximum"] == view["max_score"]
                assert (score["activityProgress"], score["gradingProgress"]) == ("Completed", "FullyGraded")
                assert platform.tokens_issued == 1
    finally:
        receiver.stop()
