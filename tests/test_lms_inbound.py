"""Inbound LMS events over real HTTP on SQLite and PostgreSQL, signed by two implementations nobody
here wrote (the `standardwebhooks` library and `svix`'s signer): they act as the HTTP API does, once
per webhook-id; forged, stale, replayed and refused calls change nothing."""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
import standardwebhooks.webhooks
import svix.webhooks
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import transaction
from service.lms_inbound import service as inbound_service
from service.models import Course, Enrollment, LmsInboundSecret, LmsReceivedWebhook, Role, Submission, User
from tests.conftest import Api, scratch_service
from tests.graders.notebooks import SOLUTION

SECRET_PATH = "/api/v1/courses/demo/lms/inbound-secret"
EVENTS_PATH = "/api/v1/lms/events"
ANSWERS = {"q1_1": {"choices": [2, 3]}, "q1_2": {"choices": [3]}}

Signer = Callable[[str, str, datetime, str], str]
SIGNERS: dict[str, Signer] = {
    "standardwebhooks": lambda secret, msg_id, at, body: standardwebhooks.webhooks.Webhook(secret).sign(
        msg_id, at, body
    ),
    "svix": lambda secret, msg_id, at, body: svix.webhooks.Webhook(secret).sign(msg_id, at, body),
}


def new_secret(api: Api, body: dict[str, Any] | None = None) -> str:
    response = api.client.put(SECRET_PATH, json=body, headers=api.accounts.header("instructor"))
    assert response.status_code == 200, response.text
    secret = response.json()["secret"]
    return str(secret if secret is not None else (body or {})["secret"])


def map_ids(api: Api, user: str = "lms-user-1", username: str = "student") -> None:
    for path, body in (
        (f"/api/v1/courses/demo/lms/users/{user}", {"username": username}),
        ("/api/v1/courses/demo/lms/assignments/lms-hw5", {"assignment": "hw5"}),
    ):
        response = api.client.put(path, json=body, headers=api.accounts.header("ta"))
        assert response.status_code == 200, response.text


def event(kind: str, **data: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": datetime.now(UTC).isoformat(), "data": {"course": "demo", **data}}


def submission_event(answers: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return event(
        "submission.created", user="lms-user-1", assignment="lms-hw5", answers=answers or ANSWERS, **extra
    )


def send(
    api: Api,
    secret: str,
    payload: dict[str, Any] | str,
    *,
    msg_id: str | None = None,
    at: datetime | None = None,
    signer: str = "standardwebhooks",
    sent_body: str | None = None,
) -> httpx2.Response:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": SIGNERS[signer](secret, msg_id, at, body),
    }
    return api.client.post(EVENTS_PATH, content=sent_body if sent_body is not None else body, headers=headers)


def count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def error_code(response: httpx2.Response) -> str:
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return str(error["code"])


@pytest.mark.parametrize("signer", SIGNERS)
def test_a_signed_submission_is_graded_as_the_mapped_student_once(
    api: Api, session: Session, signer: str
) -> None:
    secret = new_secret(api)
    map_ids(api)
    msg_id = f"msg_{uuid.uuid4().hex}"
    payload = submission_event()
    first = send(api, secret, payload, msg_id=msg_id, signer=signer)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "processed"
    assert first.json()["type"] == "submission.created"
    submission = first.json()["submission"]
    # Announced to the workers after the commit, as the HTTP API's submissions are.
    assert api.executor.notified
    assert api.grade_pending() == 1
    view = api.get("student", submission["url"]).json()
    assert (view["student"], view["status"], view["score"]) == ("student", "graded", 2.0)

    replayed = send(api, secret, payload, msg_id=msg_id, signer=signer)
    assert replayed.status_code == 200
    assert replayed.json() == {"status": "duplicate", "type": None, "submission": None}
    # An LMS retry signs again with a new timestamp, the same webhook-id: still once.
    retried = send(api, secret, payload, msg_id=msg_id, at=datetime.now(UTC) - timedelta(seconds=30))
    assert retried.json()["status"] == "duplicate"
    assert count(session, Submission) == 1


def test_forged_stale_and_tampered_events_change_nothing(
    api: Api, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    secret = new_secret(api)
    map_ids(api)
    payload = submission_event()
    msg_id = "msg_forged_then_real"
    other_secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = json.dumps(payload)
    now = datetime.now(UTC)
    with caplog.at_level(logging.INFO, logger="service.lms"):
        refused = {
            "forged": send(api, other_secret, payload, msg_id=msg_id),
            "stale": send(api, secret, payload, msg_id=msg_id, at=now - timedelta(minutes=6)),
            "future": send(api, secret, payload, msg_id=msg_id, at=now + timedelta(minutes=6)),
            "tampered": send(
                api,
                secret,
                payload,
                msg_id=msg_id,
                sent_body=body.replace('"choices": [3]', '"choices": [1]'),
            ),
            "unsigned": api.client.post(EVENTS_PATH, content=body, headers={"webhook-id": msg_id}),
            "garbled": api.client.post(
                EVENTS_PATH,
                content=body,
                headers={
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": "v1",
                },
            ),
            "bad timestamp": api.client.post(
                EVENTS_PATH,
                content=body,
                headers={"webhook-id": msg_id, "webhook-timestamp": "nan", "webhook-signature": "v1,AAAA"},
            ),
        }
    codes = {name: (response.status_code, error_code(response)) for name, response in refused.items()}
    assert codes == {
        "forged": (401, "invalid_signature"),
        "stale": (401, "stale_timestamp"),
        "future": (401, "stale_timestamp"),
        "tampered": (401, "invalid_signature"),
        "unsigned": (401, "invalid_signature"),
        "garbled": (401, "invalid_signature"),
        "bad timestamp": (401, "invalid_signature"),
    }
    assert (count(session, Submission), count(session, LmsReceivedWebhook)) == (0, 0)
    assert caplog.text.count("lms event refused: 401") == len(refused)
    assert secret.removeprefix("whsec_") not in caplog.text
    # The forgeries did not use up the webhook-id: the LMS's real call with it is acted on.
    assert send(api, secret, payload, msg_id=msg_id).json()["status"] == "processed"


def test_a_rotated_secret_keeps_verifying_for_the_grace_period(api: Api, session: Session) -> None:
    map_ids(api)
    first = new_secret(api)
    rotated = api.client.put(SECRET_PATH, headers=api.accounts.header("instructor")).json()
    second = rotated["secret"]
    assert second.startswith("whsec_")
    assert second != first
    assert rotated["live_secrets"] == 2
    assert rotated["previous_valid_until"] is not None
    for secret in (first, second):
        response = send(api, secret, submission_event())
        assert response.json()["status"] == "processed", response.text
    # Stored encrypted: the database holds neither secret.
    stored = [row.secret_encrypted for row in session.scalars(select(LmsInboundSecret))]
    assert len(stored) == 2
    assert not [row for row in stored for key in (first[6:], second[6:]) if key in row]

    settings: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    api.client.app.state.settings = settings.model_copy(  # type: ignore[attr-defined]
        update={"lms_inbound_secret_grace_seconds": 0}
    )
    # The LMS's own secret, given in the body: not echoed back; the older ones stop at once.
    given = "whsec_" + base64.b64encode(b"the LMS generated this, 32 bytes"[:32]).decode()
    answer = api.client.put(SECRET_PATH, json={"secret": given}, headers=api.accounts.header("instructor"))
    assert answer.status_code == 200
    assert (answer.json()["secret"], answer.json()["live_secrets"]) == (None, 1)
    assert error_code(send(api, second, submission_event())) == "invalid_signature"
    assert send(api, given, submission_event()).json()["status"] == "processed"


@pytest.mark.parametrize(
    "body",
    [
        {"secret": "not-whsec"},
        {"secret": "whsec_" + base64.b64encode(b"short").decode()},
        {"secret": "whsec_!!!notbase64!!!"},
        {"secret": "whsec_" + base64.b64encode(b"x" * 65).decode()},
        {"other": 1},
    ],
)
def test_a_secret_that_is_not_a_standard_webhooks_secret_is_refused(api: Api, body: dict[str, Any]) -> None:
    response = api.client.put(SECRET_PATH, json=body, headers=api.accounts.header("instructor"))
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"


def test_unknown_courses_unmapped_ids_and_malformed_events_are_4xx(api: Api, session: Session) -> None:
    secret = new_secret(api)
    map_ids(api)
    cases: list[tuple[dict[str, Any] | str, int, str]] = [
        (
            event("submission.created", user="lms-user-1", assignment="lms-hw5", answers=ANSWERS)
            | {"data": {"course": "nope"}},
            401,
            "invalid_signature",
        ),
        (
            submission_event() | {"data": submission_event()["data"] | {"user": "unmapped"}},
            422,
            "invalid_event",
        ),
        (
            submission_event() | {"data": submission_event()["data"] | {"assignment": "unmapped"}},
            422,
            "invalid_event",
        ),
        (event("grade.changed"), 422, "invalid_event"),
        (event("enrollment.created", user="u", username="has space"), 422, "invalid_event"),
        (submission_event() | {"extra": 1}, 422, "invalid_event"),
        ("[1, 2]", 422, "invalid_event"),
        ('{"data": {"course": "demo"}, "type": NaN}', 422, "invalid_event"),
        ("not json", 422, "invalid_event"),
        (submission_event({"q9": {"choices": [1]}}), 422, "invalid_answer"),
        (submission_event(files=[{"question": "q4", "content_base64": "***"}]), 422, "invalid_event"),
    ]
    for payload, status, code in cases:
        response = send(api, secret, payload)
        assert (response.status_code, error_code(response)) == (status, code), (payload, response.text)
    not_utf8 = api.client.post(EVENTS_PATH, content=b"\xff\xfe{}", headers={"webhook-id": "m"})
    assert (not_utf8.status_code, error_code(not_utf8)) == (422, "invalid_event")
    assert (count(session, Submission), count(session, LmsReceivedWebhook)) == (0, 0)


def test_an_unknown_course_answers_exactly_as_a_bad_signature(api: Api, session: Session) -> None:
    """Who cannot sign learns nothing of which courses exist (or which have a secret): an event
    naming an unknown course, a course without a secret, or a known course signed with the wrong
    secret all get the same answer; fresh or stale alike."""
    secret = new_secret(api)
    map_ids(api)
    wrong = "whsec_" + base64.b64encode(b"w" * 32).decode()
    stale = datetime.now(UTC) - timedelta(minutes=6)

    def answer(course: str, key: str, at: datetime | None = None) -> tuple[int, dict[str, Any]]:
        payload = submission_event() | {"data": submission_event()["data"] | {"course": course}}
        response = send(api, key, payload, at=at)
        return response.status_code, response.json()

    bad_signature = answer("demo", wrong)
    assert bad_signature[0] == 401
    assert bad_signature[1]["error"]["code"] == "invalid_signature"
    assert answer("no-such-course", secret) == bad_signature
    assert answer("no-such-course", wrong) == bad_signature
    assert answer("other", secret) == bad_signature  # a course with no inbound secret
    stale_known = answer("demo", wrong, stale)
    assert stale_known[1]["error"]["code"] == "stale_timestamp"
    assert answer("no-such-course", secret, stale) == stale_known
    assert (count(session, Submission), count(session, LmsReceivedWebhook)) == (0, 0)


def test_webhook_ids_past_the_replay_window_are_pruned_and_a_fresh_replay_is_still_ignored(
    api: Api, session: Session
) -> None:
    secret = new_secret(api)
    map_ids(api)
    settings: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    window = timedelta(seconds=settings.lms_inbound_webhook_id_seconds)
    demo = session.scalars(select(Course.id).where(Course.slug == "demo")).one()
    now = datetime.now(UTC)
    session.add_all(
        [
            LmsReceivedWebhook(
                course_id=demo, webhook_id="msg_long_ago", received_at=now - window - timedelta(minutes=1)
            ),
            LmsReceivedWebhook(
                course_id=demo, webhook_id="msg_recent", received_at=now - window + timedelta(minutes=5)
            ),
        ]
    )
    session.commit()

    payload = event("enrollment.created", user="lms-new", username="newcomer", role="student")
    assert send(api, secret, payload, msg_id="msg_fresh").json()["status"] == "processed"
    session.expire_all()
    kept = set(session.scalars(select(LmsReceivedWebhook.webhook_id)))
    assert kept == {"msg_recent", "msg_fresh"}
    # A replay within the window is still acknowledged and ignored; one as old as a pruned id
    # carries a signed timestamp that old, and is refused as stale.
    assert send(api, secret, payload, msg_id="msg_fresh").json()["status"] == "duplicate"
    assert send(api, secret, payload, msg_id="msg_recent").json()["status"] == "duplicate"
    replayed = send(api, secret, payload, msg_id="msg_long_ago", at=now - window - timedelta(minutes=1))
    assert (replayed.status_code, error_code(replayed)) == (401, "stale_timestamp")


def test_a_refused_event_leaves_nothing_behind_and_its_id_unused(api: Api, session: Session) -> None:
    secret = new_secret(api)
    map_ids(api)
    settings: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    api.client.app.state.settings = settings.model_copy(  # type: ignore[attr-defined]
        update={"rate_limit_submissions": 1}
    )
    assert api.submit("student", {"q1_2": {"choices": [3]}}).status_code == 202
    # The rate limit the HTTP API enforces holds for the LMS's submissions too.
    limited = send(api, secret, submission_event(), msg_id="msg_limited")
    assert (limited.status_code, error_code(limited)) == (429, "rate_limited")
    # A valid notebook beside an invalid answer: neither is stored.
    notebook = base64.b64encode(SOLUTION.read_bytes()).decode()
    api.client.app.state.settings = settings  # type: ignore[attr-defined]
    half = send(
        api,
        secret,
        submission_event(
            {"q1_1": {"choices": "two"}}, files=[{"question": "q4", "content_base64": notebook}]
        ),
        msg_id="msg_limited",
    )
    assert (half.status_code, error_code(half)) == (422, "invalid_answer")
    assert (count(session, Submission), count(session, LmsReceivedWebhook)) == (1, 0)
    # The same webhook-id, once the event is right, is acted on (nothing recorded it before).
    fixed = send(
        api,
        secret,
        submission_event(files=[{"question": "q4", "name": "hw5.ipynb", "content_base64": notebook}]),
        msg_id="msg_limited",
    )
    assert fixed.json()["status"] == "processed", fixed.text
    answers = api.get("ta", fixed.json()["submission"]["url"]).json()["answers"]
    assert answers["q4"]["name"] == "hw5.ipynb"
    assert answers["q4"]["size"] == len(SOLUTION.read_bytes())


def test_enrollment_events_enroll_map_and_unenroll(api: Api, session: Session) -> None:
    secret = new_secret(api)
    map_ids(api, user="lms-user-1", username="student")
    created = send(
        api, secret, event("enrollment.created", user="lms-77", username="newcomer", role="student")
    )
    assert created.json() == {"status": "processed", "type": "enrollment.created", "submission": None}
    session.expire_all()
    user = session.scalars(select(User).where(User.username == "newcomer")).one()
    assert session.scalar(select(Enrollment.role).where(Enrollment.user_id == user.id)) == Role.STUDENT

    as_newcomer = submission_event() | {"data": submission_event()["data"] | {"user": "lms-77"}}
    submitted = send(api, secret, as_newcomer)
    assert submitted.status_code == 200, submitted.text
    assert api.get("ta", submitted.json()["submission"]["url"]).json()["student"] == "newcomer"

    # The LMS promotes them: the same mapping, a new role.
    send(api, secret, event("enrollment.created", user="lms-77", username="newcomer", role="ta"))
    session.expire_all()
    assert session.scalar(select(Enrollment.role).where(Enrollment.user_id == user.id)) == Role.TA

    removed = send(api, secret, event("enrollment.deleted", user="lms-77"))
    assert removed.json()["status"] == "processed"
    session.expire_all()
    assert session.scalar(select(Enrollment.role).where(Enrollment.user_id == user.id)) is None
    refused = send(api, secret, as_newcomer)
    assert (refused.status_code, error_code(refused)) == (422, "invalid_event")
    # Their submission stays.
    assert count(session, Submission) == 1
    unknown = send(api, secret, event("enrollment.deleted", user="lms-never-mapped"))
    assert (unknown.status_code, error_code(unknown)) == (422, "invalid_event")


def test_mappings_name_members_and_assignments_of_the_course(api: Api) -> None:
    ta = api.accounts.header("ta")
    users = "/api/v1/courses/demo/lms/users"
    assert api.client.put(f"{users}/42", json={"username": "student"}, headers=ta).json() == {
        "course": "demo",
        "external_id": "42",
        "username": "student",
    }
    assert (
        api.client.put(f"{users}/42", json={"username": "student2"}, headers=ta).json()["username"]
        == "student2"
    )
    # A user of another course does not exist here.
    assert api.client.put(f"{users}/43", json={"username": "outsider"}, headers=ta).status_code == 404
    assert api.client.put(f"{users}/%01", json={"username": "student"}, headers=ta).status_code == 422
    assert api.client.put(f"{users}/{'9' * 256}", json={"username": "student"}, headers=ta).status_code == 422
    assignments = "/api/v1/courses/demo/lms/assignments"
    assert api.client.put(f"{assignments}/7", json={"assignment": "other1"}, headers=ta).status_code == 404
    assert api.client.put(f"{assignments}/7", json={"assignment": "hw5"}, headers=ta).status_code == 200


def test_two_deliveries_of_one_event_at_once_act_once(backend: str, tmp_path: Path) -> None:
    """Real commits in two threads: the second delivery waits for the first's row, then is a
    duplicate (PostgreSQL: the unique index; SQLite: the write lock)."""
    with scratch_service(backend, tmp_path) as service:
        instructor = {"Authorization": f"Bearer {service.tokens['instructor']}"}
        secret = service.client.put(SECRET_PATH, headers=instructor).json()["secret"]
        for path, mapping in (
            ("/api/v1/courses/demo/lms/users/lms-user-1", {"username": "student"}),
            ("/api/v1/courses/demo/lms/assignments/lms-hw5", {"assignment": "hw5"}),
        ):
            assert service.client.put(path, json=mapping, headers=instructor).status_code == 200
        body = json.dumps(submission_event())
        at = datetime.now(UTC)
        headers = inbound_service.SignatureHeaders(
            "msg_raced", str(int(at.timestamp())), SIGNERS["svix"](secret, "msg_raced", at, body)
        )
        start = threading.Barrier(2)

        def deliver() -> str:
            start.wait()
            with transaction(service.session_factory) as session:
                received = inbound_service.receive_event(session, service.settings, body.encode(), headers)
            return received.result.status

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(lambda _: deliver(), range(2)))
        assert outcomes == ["duplicate", "processed"]
        with service.session_factory() as session:
            assert count(session, Submission) == 1
