"""Outbound webhooks on the real path: the staff API, the outbox written with the scores, and the
delivery loop POSTing to a receiving HTTP server on loopback (a real server thread) that verifies
every request with the `standardwebhooks` library AND svix's verifier, neither written here.

Faults: the receiver down, then up (every event later, once each, in order per submission); a
receiver that always fails (dead letter, then redeliver); the service gone between grading and
delivery (a second process delivers from the outbox)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks.webhooks
import svix.webhooks
from sqlalchemy import func, select

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.grading.runner import GradingRunner
from service.lms import repository
from service.lms.delivery import MAX_ATTEMPTS, WebhookDeliverer
from service.models import Queue, utcnow
from service.models.lms import OutboxEvent, WebhookDelivery, WebhookSubscription
from tests.conftest import REPOSITORY_ROOT, Api, scratch_service

ANSWERS = {"q1_1": {"choices": [2, 3]}, "q3_2": {"text": "Vanishing gradients."}}
BOTH = ["submission.graded", "grade.changed"]


@dataclass
class Received:
    webhook_id: str
    event_type: str
    data: dict[str, Any]


@dataclass
class Receiver:
    """An LMS stand-in: verifies each request with both libraries, records it, answers `status`."""

    secret: str = ""
    status: int = 200
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self, port: int = 0) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    payload = standardwebhooks.webhooks.Webhook(receiver.secret).verify(body, headers)
                    svix.webhooks.Webhook(receiver.secret).verify(body, dict(headers))
                except Exception as error:  # recorded; the test asserts there are none
                    receiver.refused.append(repr(error))
                    self.send_response(400)
                    self.end_headers()
                    return
                if receiver.status < 300:
                    receiver.received.append(
                        Received(headers["webhook-id"], payload["type"], payload["data"])
                    )
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def _fast(settings: Settings) -> Settings:
    # The schedule (10 s ... 8 h) scaled to milliseconds; a short timeout for a refused port.
    return settings.model_copy(update={"webhook_retry_scale": 0.00002, "webhook_timeout_seconds": 2.0})


def _deliverer(api: Api, name: str = "worker-a") -> WebhookDeliverer:
    settings: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    return WebhookDeliverer(api.client.app.state.session_factory, _fast(settings), name)  # type: ignore[attr-defined]


def _subscribe(api: Api, receiver: Receiver, events: list[str] = BOTH, who: str = "instructor") -> str:
    created = api.client.post(
        "/api/v1/courses/demo/webhooks",
        json={"url": receiver.url, "events": events},
        headers=api.accounts.header(who),
    )
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]
    return str(created.json()["id"])


def _deliveries(api: Api, webhook: str) -> list[dict[str, Any]]:
    response = api.get("ta", f"/api/v1/courses/demo/webhooks/{webhook}/deliveries?limit=200")
    assert response.status_code == 200
    return list(response.json()["items"])


def _override(api: Api, submission: str, score: float) -> None:
    response = api.client.put(
        f"/api/v1/submissions/{submission}/questions/q1_1/grade",
        json={"score": score, "reason": "checked by hand", "version": None},
        headers=api.accounts.header("ta"),
    )
    assert response.status_code == 200, response.text


def _drain(deliverer: WebhookDeliverer, api: Api, until: float = 20.0) -> None:
    """Run the loop until no delivery of a live subscription is pending (the retries are
    milliseconds apart), as a worker would."""
    factory = api.client.app.state.session_factory  # type: ignore[attr-defined]
    pending = (
        select(func.count())
        .select_from(WebhookDelivery)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.status == "pending", WebhookSubscription.disabled_at.is_(None))
    )
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        if deliverer.run_once() == 0:
            with factory() as session:
                if session.scalar(pending) == 0:
                    return
            time.sleep(0.02)
    raise AssertionError("deliveries still pending")


def test_subscriptions_show_the_secret_once_and_refuse_bad_urls_and_events(api: Api) -> None:
    path = "/api/v1/courses/demo/webhooks"
    created = api.client.post(
        path,
        json={"url": "https://lms.example.edu/hook", "events": ["grade.changed", "submission.graded"]},
        headers=api.accounts.header("ta"),
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert len(body["secret"]) > 40
    assert body["events"] == ["grade.changed", "submission.graded"]
    listed = api.get("instructor", path).json()["items"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert body["secret"] not in json.dumps(listed)

    for bad in (
        {"url": "file:///etc/passwd", "events": ["grade.changed"]},
        {"url": "ftp://lms.example.edu/x", "events": ["grade.changed"]},
        {"url": "https:///no-host", "events": ["grade.changed"]},
        {"url": "https://lms.example.edu:99999/x", "events": ["grade.changed"]},
        {"url": "https://lms.example.edu/\x00", "events": ["grade.changed"]},
        {"url": "https://lms.example.edu/x", "events": ["submission.deleted"]},
        {"url": "https://lms.example.edu/x", "events": []},
        {"url": "https://lms.example.edu/" + "a" * 3000, "events": ["grade.changed"]},
    ):
        refused = api.client.post(path, json=bad, headers=api.accounts.header("ta"))
        assert refused.status_code == 422, bad
        assert set(refused.json()["error"]) == {"code", "message", "details"}

    assert (
        api.client.post(
            path,
            json={"url": "https://x.org", "events": ["grade.changed"]},
            headers=api.accounts.header("student"),
        ).status_code
        == 403
    )
    deleted = api.client.delete(f"{path}/{body['id']}", headers=api.accounts.header("ta"))
    assert deleted.status_code == 204
    assert api.get("ta", path).json()["items"][0]["disabled_at"] is not None
    assert api.client.delete(f"{path}/{body['id']}", headers=api.accounts.header("ta")).status_code == 204


def test_nothing_enters_the_outbox_without_a_subscriber(api: Api) -> None:
    assert api.submit("student", ANSWERS).status_code == 202
    api.grade_pending()
    with api.client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 0


def test_grading_and_an_override_reach_the_receiver_signed_once_each(api: Api, receiver: Receiver) -> None:
    webhook = _subscribe(api, receiver)
    submission = api.submit("student", ANSWERS).json()["id"]
    api.grade_pending()
    deliverer = _deliverer(api)
    try:
        _drain(deliverer, api)
        _override(api, submission, 0.0)
        _drain(deliverer, api)
    finally:
        deliverer.close()

    assert receiver.refused == []
    assert [item.event_type for item in receiver.received] == ["submission.graded", "grade.changed"]
    graded, changed = (item.data for item in receiver.received)
    assert graded["submission_id"] == submission
    assert graded["student"] == "student"
    assert (graded["course"], graded["assignment"]) == ("demo", "hw5")
    assert graded["pending_manual"] is True  # q3_2 waits for a TA
    q1 = {question["key"]: question for question in graded["questions"]}["q1_1"]
    assert q1["score"] > 0
    assert q1["graded_by_person"] is False
    changed_q1 = {question["key"]: question for question in changed["questions"]}["q1_1"]
    assert changed_q1 == changed_q1 | {"score": 0.0, "graded_by_person": True, "verdict": "incorrect"}
    assert changed["score"] == pytest.approx(graded["score"] - q1["score"])
    assert changed["effective_score"] == pytest.approx(changed["score"] * (1 - changed["late_penalty"]))

    log = _deliveries(api, webhook)
    assert [entry["status"] for entry in log] == ["delivered", "delivered"]
    assert all(entry["attempts"] == 1 and entry["last_status_code"] == 200 for entry in log)
    assert {entry["webhook_id"] for entry in log} == {item.webhook_id for item in receiver.received}


def test_a_receiver_down_gets_every_event_later_once_each_in_order(api: Api) -> None:
    receiver = Receiver()
    receiver.start()
    port = receiver.port
    receiver.stop()  # the LMS is down: connections to its port are refused
    webhook = _subscribe(api, receiver)
    submissions = [api.submit(who, ANSWERS).json()["id"] for who in ("student", "student2")]
    api.grade_pending()
    for submission in submissions:
        _override(api, submission, 0.5)
    deliverer = _deliverer(api)
    try:
        assert deliverer.run_once() == 2  # only the first event of each submission
        log = _deliveries(api, webhook)
        assert len(log) == 4
        failed = [entry for entry in log if entry["attempts"] == 1]
        assert {entry["event_type"] for entry in failed} == {"submission.graded"}
        assert all(entry["status"] == "pending" and "ConnectError" in entry["last_error"] for entry in failed)
        # The later events wait behind their submission's failing one, however due they are.
        for _ in range(3):
            time.sleep(0.05)
            deliverer.run_once()
        assert all(
            entry["attempts"] == 0
            for entry in _deliveries(api, webhook)
            if entry["event_type"] == "grade.changed"
        )

        receiver.start(port)  # the LMS is back
        try:
            _drain(deliverer, api)
        finally:
            receiver.stop()
    finally:
        deliverer.close()

    assert receiver.refused == []
    ids = [item.webhook_id for item in receiver.received]
    assert len(ids) == len(set(ids)) == 4
    for submission in submissions:
        kinds = [item.event_type for item in receiver.received if item.data["submission_id"] == submission]
        assert kinds == ["submission.graded", "grade.changed"]
    assert {entry["status"] for entry in _deliveries(api, webhook)} == {"delivered"}


def test_a_failing_receiver_dead_letters_then_redeliver_sends_it_again(api: Api, receiver: Receiver) -> None:
    receiver.status = 500
    webhook = _subscribe(api, receiver, ["submission.graded"])
    api.submit("student", ANSWERS)
    api.grade_pending()
    deliverer = _deliverer(api)
    try:
        _drain(deliverer, api)
        (dead,) = _deliveries(api, webhook)
        assert dead["status"] == "dead"
        assert dead["attempts"] == MAX_ATTEMPTS
        assert dead["last_status_code"] == 500
        assert dead["next_attempt_at"] is None
        assert "500" in dead["last_error"]

        path = f"/api/v1/courses/demo/webhooks/{webhook}/deliveries/{dead['id']}/redeliver"
        assert api.client.post(path, headers=api.accounts.header("student")).status_code == 403
        again = api.client.post(path, headers=api.accounts.header("ta"))
        assert again.status_code == 202
        assert again.json()["status"] == "pending"
        assert again.json()["attempts"] == 0
        receiver.status = 200
        _drain(deliverer, api)
    finally:
        deliverer.close()
    (delivered,) = _deliveries(api, webhook)
    assert delivered["status"] == "delivered"
    assert delivered["attempts"] == 1
    assert [item.webhook_id for item in receiver.received] == [dead["webhook_id"]]
    missing = api.client.post(
        f"/api/v1/courses/demo/webhooks/{webhook}/deliveries/2147483647/redeliver",
        headers=api.accounts.header("ta"),
    )
    assert missing.status_code == 404


def test_a_deleted_subscription_sends_nothing_more(api: Api, receiver: Receiver) -> None:
    webhook = _subscribe(api, receiver)
    api.submit("student", ANSWERS)
    api.grade_pending()
    assert (
        api.client.delete(
            f"/api/v1/courses/demo/webhooks/{webhook}", headers=api.accounts.header("ta")
        ).status_code
        == 204
    )
    api.submit("student2", ANSWERS)
    api.grade_pending()
    deliverer = _deliverer(api)
    try:
        _drain(deliverer, api)
    finally:
        deliverer.close()
    assert receiver.received == []
    assert [entry["status"] for entry in _deliveries(api, webhook)] == ["pending"]


def test_a_claim_by_a_worker_that_died_is_delivered_by_another_after_its_lease(
    api: Api, receiver: Receiver
) -> None:
    _subscribe(api, receiver)
    api.submit("student", ANSWERS)
    api.grade_pending()
    factory = api.client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:  # worker-a claims, then dies before sending
        (claimed,) = repository.claim_deliveries(session, "worker-a", utcnow(), timedelta(seconds=0.2), 10)
        session.commit()
    deliverer = _deliverer(api, "worker-b")
    try:
        assert deliverer.run_once() == 0  # the lease holds
        time.sleep(0.3)
        _drain(deliverer, api)
    finally:
        deliverer.close()
    assert len(receiver.received) == 1
    with factory() as session:  # worker-a comes back: its stale outcome is fenced out
        assert not repository.finish_delivery(session, claimed, "worker-a", {"last_error": "late"})
        row = session.get(WebhookDelivery, claimed.id)
        assert row is not None
        assert row.status == "delivered"
        assert row.attempts == 2


DELIVER_IN_A_NEW_PROCESS = """
import sys
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.lms.delivery import WebhookDeliverer
settings = Settings(database_url=sys.argv[1], local_workers=0)
engine = make_engine(settings)
deliverer = WebhookDeliverer(make_session_factory(engine), settings, "restarted-worker")
print(deliverer.run_until_idle())
deliverer.close()
engine.dispose()
"""


def test_a_restart_between_grading_and_delivery_loses_nothing(
    backend: str, tmp_path: Path, receiver: Receiver
) -> None:
    """Graded and committed; the process that graded is gone before any delivery; a new process
    finds the outbox row and delivers it, once."""
    with scratch_service(backend, tmp_path) as service:
        headers = {"Authorization": f"Bearer {service.tokens['instructor']}"}
        created = service.client.post(
            "/api/v1/courses/demo/webhooks", json={"url": receiver.url, "events": BOTH}, headers=headers
        )
        receiver.secret = created.json()["secret"]
        student = {"Authorization": f"Bearer {service.tokens['student']}"}
        submitted = service.client.post(
            "/api/v1/courses/demo/assignments/hw5/submissions", json={"answers": ANSWERS}, headers=student
        )
        assert submitted.status_code == 202
        engine = make_engine(service.settings)
        try:
            runner = GradingRunner(
                make_session_factory(engine), service.settings, "first-process", list(Queue)
            )
            assert runner.run_once() == 1
        finally:
            engine.dispose()  # the grading process is gone; nothing was sent
        assert receiver.received == []

        url = service.settings.database_url
        for _ in range(2):  # the restarted worker delivers; a second run finds nothing more
            subprocess.run(
                [sys.executable, "-c", DELIVER_IN_A_NEW_PROCESS, url],
                check=True,
                cwd=REPOSITORY_ROOT,
                timeout=120,
                capture_output=True,
            )
    assert receiver.refused == []
    assert [(item.event_type, item.data["submission_id"]) for item in receiver.received] == [
        ("submission.graded", submitted.json()["id"])
    ]
