"""Lateness measured again changes effective scores, and the LMS hears it: `grade.changed` for each
graded submission whose late penalty moved (a policy PUT/DELETE, an extension PUT/DELETE, a new
material version), none for one whose penalty stayed or that is not graded yet. SQLite and
PostgreSQL, through the API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.models.lms import OutboxEvent
from tests.conftest import Api
from tests.test_api_policies import BASE, RIGHT, _iso, _now, load_hw5_with_policy, set_policy


def _subscribe(api: Api, events: list[str]) -> None:
    created = api.client.post(
        "/api/v1/courses/demo/webhooks",
        json={"url": "https://lms.example.edu/hook", "events": events},
        headers=api.accounts.header("instructor"),
    )
    assert created.status_code == 201, created.text


def _changes(api: Api, since: int = 0) -> list[dict[str, Any]]:
    """The data of the grade.changed events recorded after event id `since`, oldest first."""
    factory: sessionmaker[Session] = api.client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        events = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.event_type == "grade.changed", OutboxEvent.id > since)
            .order_by(OutboxEvent.id)
        ).all()
        return [dict(event.payload["data"]) | {"event_id": event.id} for event in events]


def _last_id(api: Api) -> int:
    factory: sessionmaker[Session] = api.client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        return int(session.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1)) or 0)


def test_policy_and_extension_changes_announce_the_new_effective_scores(api: Api) -> None:
    _subscribe(api, ["grade.changed"])
    graded = api.submit("student", RIGHT).json()["id"]
    other = api.submit("student2", RIGHT).json()["id"]
    api.grade_pending()
    waiting = api.submit("student2", RIGHT).json()["id"]  # not graded yet
    assert _changes(api) == []

    # The due time moves before all three: the graded two are a day started late.
    late_policy = {"due_at": _iso(_now() - timedelta(hours=1)), "late": {"penalty_percent": 25}}
    set_policy(api, late_policy)
    changed = _changes(api)
    assert sorted(item["submission_id"] for item in changed) == sorted([graded, other])
    assert waiting not in {item["submission_id"] for item in changed}  # its grading will tell
    for item in changed:
        assert item["late_penalty"] == 0.25
        assert item["effective_score"] == pytest.approx(item["score"] * 0.75)

    # The same policy again: nothing moves, nothing is announced.
    mark = _last_id(api)
    set_policy(api, late_policy)
    assert _changes(api, mark) == []

    # An extension: only that student's submission, back to no penalty; removed: late again.
    extended = api.client.put(
        f"{BASE}/extensions/student",
        json={"due_at": _iso(_now() + timedelta(days=2))},
        headers=api.accounts.header("ta"),
    )
    assert extended.status_code == 200, extended.text
    assert [(item["submission_id"], item["late_penalty"]) for item in _changes(api, mark)] == [(graded, 0.0)]
    assert _changes(api, mark)[0]["effective_score"] == _changes(api, mark)[0]["score"]
    mark = _last_id(api)
    removed = api.client.delete(f"{BASE}/extensions/student", headers=api.accounts.header("ta"))
    assert removed.status_code == 204
    assert [(item["submission_id"], item["late_penalty"]) for item in _changes(api, mark)] == [(graded, 0.25)]

    # The course's policy dropped: the material's (no deadline) applies, every penalty goes.
    mark = _last_id(api)
    reset = api.client.delete(f"{BASE}/policy", headers=api.accounts.header("instructor"))
    assert reset.status_code == 200, reset.text
    after_reset = _changes(api, mark)
    assert sorted(item["submission_id"] for item in after_reset) == sorted([graded, other])
    assert {item["late_penalty"] for item in after_reset} == {0.0}

    # The submission graded later announces itself with the penalty in force then.
    api.grade_pending()
    assert waiting not in {item["submission_id"] for item in _changes(api)}


def test_a_late_seconds_change_with_the_same_penalty_announces_nothing(api: Api) -> None:
    _subscribe(api, ["grade.changed"])
    api.submit("student", RIGHT)
    api.grade_pending()
    # Late by about an hour, then by about two: one day started late either way, the same 10 %.
    set_policy(api, {"due_at": _iso(_now() - timedelta(hours=1)), "late": {"penalty_percent": 10}})
    mark = _last_id(api)
    assert len(_changes(api)) == 1
    set_policy(api, {"due_at": _iso(_now() - timedelta(hours=2)), "late": {"penalty_percent": 10}})
    assert _changes(api, mark) == []


def test_a_subscription_to_other_events_gets_no_lateness_change(api: Api) -> None:
    _subscribe(api, ["submission.graded"])
    api.submit("student", RIGHT)
    api.grade_pending()
    set_policy(api, {"due_at": _iso(_now() - timedelta(hours=1)), "late": {"penalty_percent": 25}})
    assert _changes(api) == []


def test_a_new_material_version_with_a_deadline_announces_the_penalty(
    api: Api, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    _subscribe(api, ["grade.changed"])
    submission = api.submit("student", RIGHT).json()["id"]
    api.grade_pending()

    due = (_now() - timedelta(hours=30)).isoformat()
    load_hw5_with_policy(
        session_factory, tmp_path / "hw5", f'due_at = "{due}"\nlate = {{ penalty_percent = 10 }}'
    )
    (change,) = _changes(api)
    assert (change["submission_id"], change["late_penalty"]) == (submission, 0.2)
    assert change["effective_score"] == pytest.approx(change["score"] * 0.8)
