"""Revoking API tokens: by staff over the API (within their courses), by the user, and by the operator
with `autograde tokens revoke`. A revoked token is refused from the very next request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.auth.service import authenticate, issue_token
from service.config import Settings
from service.db import make_engine, make_session_factory
from service.errors import Unauthenticated
from service.migrations import upgrade_database
from service.models import ApiToken, Role, User
from tests.conftest import REPOSITORY_ROOT, Api, create_scratch_database
from tests.factories import add_user

ASSIGNMENT = "/api/v1/courses/demo/assignments/hw5"


def _revoke(api: Api, caller: str, username: str) -> tuple[int, dict[str, object]]:
    response = api.client.delete(f"/api/v1/users/{username}/tokens", headers=api.accounts.header(caller))
    return response.status_code, response.json()


def test_a_revoked_token_is_refused_at_once(api: Api, session_factory: sessionmaker[Session]) -> None:
    assert api.get("student", ASSIGNMENT).status_code == 200
    assert _revoke(api, "instructor", "student") == (200, {"username": "student", "revoked": 1})
    refused = api.get("student", ASSIGNMENT)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    assert refused.headers["www-authenticate"] == "Bearer"
    # Nobody else lost access, and revoking again finds nothing live.
    assert api.get("student2", ASSIGNMENT).status_code == 200
    assert _revoke(api, "instructor", "student") == (200, {"username": "student", "revoked": 0})
    with session_factory() as session:
        revoked_at = session.scalars(
            select(ApiToken.revoked_at).join(User).where(User.username == "student")
        ).all()
    assert revoked_at
    assert all(at is not None for at in revoked_at)


def test_every_live_token_of_the_user_is_revoked(api: Api, session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        user_id = session.scalars(select(User.id).where(User.username == "student2")).one()
        second = issue_token(session, user_id, "laptop")
        session.commit()
    assert api.client.get(ASSIGNMENT, headers={"Authorization": f"Bearer {second}"}).status_code == 200
    assert _revoke(api, "ta", "student2") == (200, {"username": "student2", "revoked": 2})
    assert api.client.get(ASSIGNMENT, headers={"Authorization": f"Bearer {second}"}).status_code == 401
    assert api.get("student2", ASSIGNMENT).status_code == 401


def test_a_user_may_revoke_their_own_tokens(api: Api) -> None:
    assert _revoke(api, "ta", "ta") == (200, {"username": "ta", "revoked": 1})
    assert api.get("ta", ASSIGNMENT).status_code == 401


@pytest.mark.parametrize(
    ("caller", "target", "status", "code"),
    [
        ("student", "student2", 403, "forbidden"),
        ("student", "ta", 403, "forbidden"),
        ("ta", "instructor", 403, "forbidden"),
        ("ta", "colleague_ta", 403, "forbidden"),
        ("instructor", "colleague_instructor", 403, "forbidden"),
        # Never across courses: the other course's members do not exist for demo's staff.
        ("instructor", "outsider", 404, "not_found"),
        ("instructor", "other_ta", 404, "not_found"),
        ("other_ta", "student", 404, "not_found"),
        ("instructor", "nobody", 404, "not_found"),
    ],
)
def test_who_may_not_revoke_whose_tokens(
    api: Api, session_factory: sessionmaker[Session], caller: str, target: str, status: int, code: str
) -> None:
    with session_factory() as session:
        add_user(session, "colleague_ta", "demo", Role.TA)
        add_user(session, "colleague_instructor", "demo", Role.INSTRUCTOR)
        session.commit()
    response = api.client.delete(f"/api/v1/users/{target}/tokens", headers=api.accounts.header(caller))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    if target in api.accounts.tokens:  # the refused request revoked nothing
        own_course = (
            "/api/v1/courses/other/assignments/other1" if target in ("outsider", "other_ta") else ASSIGNMENT
        )
        assert api.get(target, own_course).status_code == 200


def test_staff_of_the_other_course_revoke_within_it(api: Api) -> None:
    assert _revoke(api, "other_ta", "outsider") == (200, {"username": "outsider", "revoked": 1})
    assert api.get("outsider", "/api/v1/courses/other/assignments/other1").status_code == 401


def test_an_overlong_username_is_a_422_not_a_lookup(api: Api) -> None:
    response = api.client.delete(f"/api/v1/users/{'x' * 65}/tokens", headers=api.accounts.header("ta"))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {"AUTOGRADE_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_operator_revokes_a_users_tokens_from_the_command_line(backend: str, tmp_path: Path) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    engine = make_engine(Settings(database_url=url))
    try:
        upgrade_database(engine)
        factory = make_session_factory(engine)
        with factory() as session, session.begin():
            alice = [
                add_user(session, "alice", "c1", Role.STUDENT),
                add_user(session, "alice", "c2", Role.TA),
            ]
            bob = add_user(session, "bob", "c1", Role.STUDENT)
        done = _cli("tokens", "revoke", "alice", database_url=url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == "alice: 2 token(s) revoked"
        with factory() as session:
            for token in alice:
                with pytest.raises(Unauthenticated):
                    authenticate(session, token)
            assert authenticate(session, bob).username == "bob"
        unknown = _cli("tokens", "revoke", "nobody", database_url=url)
        assert unknown.returncode == 1
        assert "No user 'nobody'" in unknown.stdout
    finally:
        engine.dispose()
        drop()
