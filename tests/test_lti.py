"""LTI 1.3, the tool side, against `lti1p3platform` as the LMS: registration, the tool's JWKS and
its rotation, the OIDC login, the launch (and every forged, stale or replayed one refused), and the
LMS user mapped to ours with the LMS's role. Real SQLite and PostgreSQL through the `api` fixture."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.lti import service as lti_service
from service.lti.platform_keys import PlatformKeys
from service.models import Enrollment, LmsMapping, LtiToolKey, User
from tests.conftest import Api
from tests.lti_platform import (
    CLIENT_ID,
    DEPLOYMENT_ID,
    INSTRUCTOR,
    ISSUER,
    LEARNER,
    TEACHING_ASSISTANT,
    Platform,
    new_private_key_pem,
    running_platform,
)

TOOL = "https://testserver"
PLATFORM_PATH = "/api/v1/courses/demo/lti/platform"


@pytest.fixture
def platform(api: Api, settings: Settings) -> Iterator[Platform]:
    with running_platform(settings.public_url + lti_service.LAUNCH_PATH) as platform:
        response = api.client.put(
            PLATFORM_PATH, json=platform.registration_body(), headers=api.accounts.header("instructor")
        )
        assert response.status_code == 200, response.text
        yield platform


def login(api: Api, platform: Platform, user_id: str) -> str:
    """The browser's trip through the tool's login: answers the platform URL it was sent to."""
    initiation = urlsplit(platform.login_initiation(TOOL + lti_service.LOGIN_PATH, user_id))
    response = api.client.get(f"{TOOL}{initiation.path}?{initiation.query}", follow_redirects=False)
    assert response.status_code == 302, response.text
    return str(response.headers["location"])


def launch(api: Api, form: dict[str, Any]) -> Any:
    return api.client.post(
        TOOL + lti_service.LAUNCH_PATH, data={"id_token": form["id_token"], "state": form["state"]}
    )


def full_launch(api: Api, platform: Platform, user_id: str, roles: list[str], **custom: str) -> Any:
    form = platform.launch_form(login(api, platform, user_id), user_id, roles, custom or None)
    return launch(api, form)


def test_the_registration_answers_the_tools_urls_and_publishes_a_key(api: Api, platform: Platform) -> None:
    response = api.client.put(
        PLATFORM_PATH, json=platform.registration_body(), headers=api.accounts.header("instructor")
    )
    body = response.json()
    assert body["tool"] == {
        "login_url": "http://127.0.0.1:8000/lti/login",
        "launch_url": "http://127.0.0.1:8000/lti/launch",
        "jwks_url": "http://127.0.0.1:8000/.well-known/jwks.json",
    }
    assert body["deployment_ids"] == [DEPLOYMENT_ID]
    keys = api.client.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1
    assert {"kid", "kty", "n", "e"} <= keys[0].keys()
    assert keys[0]["alg"] == "RS256"
    assert "d" not in keys[0]  # never the private half


def test_only_the_courses_instructor_registers_the_platform(api: Api, platform: Platform) -> None:
    body = platform.registration_body()
    assert api.client.put(PLATFORM_PATH, json=body, headers=api.accounts.header("ta")).status_code == 403
    assert api.client.put(PLATFORM_PATH, json=body, headers=api.accounts.header("student")).status_code == 403
    assert (
        api.client.put(PLATFORM_PATH, json=body, headers=api.accounts.header("outsider")).status_code == 404
    )
    assert api.client.put(PLATFORM_PATH, json=body).status_code == 401
    other = api.client.put(
        "/api/v1/courses/other/lti/platform", json=body, headers=api.accounts.header("other_ta")
    )
    assert other.status_code == 403


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("jwks_url", "file:///etc/passwd"),
        ("auth_login_url", "ftp://lms.example/auth"),
        ("deployment_ids", []),
    ],
)
def test_a_malformed_registration_is_a_422(api: Api, platform: Platform, field: str, value: Any) -> None:
    body = platform.registration_body() | {field: value}
    response = api.client.put(PLATFORM_PATH, json=body, headers=api.accounts.header("instructor"))
    assert response.status_code == 422
    assert response.json()["error"]["code"]


def test_rotation_publishes_the_new_key_and_keeps_the_old_for_the_grace_period(
    api: Api, platform: Platform, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    (old,) = api.client.get("/.well-known/jwks.json").json()["keys"]
    with session_factory() as session:
        new_kid = lti_service.rotate_tool_key(session, settings)
        session.commit()
    kids = [key["kid"] for key in api.client.get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [new_kid, old["kid"]]
    with session_factory() as session:
        assert (
            lti_service.tool_jwks(session, settings.model_copy(update={"lti_key_grace_seconds": 0})).keys[0][
                "kid"
            ]
            == new_kid
        )
        assert (
            len(lti_service.tool_jwks(session, settings.model_copy(update={"lti_key_grace_seconds": 0})).keys)
            == 1
        )
        stored = session.scalars(select(LtiToolKey.private_key_encrypted)).all()
        assert all("PRIVATE KEY" not in text for text in stored)  # encrypted at rest


def test_a_student_launch_maps_the_lms_user_and_lands_on_the_assignment(
    api: Api, platform: Platform, session_factory: sessionmaker[Session]
) -> None:
    authentication = login(api, platform, "lms-user-42")
    parameters = dict(parse_qsl(urlsplit(authentication).query))
    assert parameters["client_id"] == CLIENT_ID
    assert parameters["response_mode"] == "form_post"
    assert parameters["redirect_uri"] == "http://127.0.0.1:8000/lti/launch"
    assert parameters["login_hint"] == "lms-user-42"
    form = platform.launch_form(authentication, "lms-user-42", [LEARNER], {"assignment": "hw5"})
    response = launch(api, form)
    assert response.status_code == 200, response.text
    assert "Your submissions" in response.text
    assert "autograde_lti=" in response.headers["set-cookie"]
    assert "Secure" in response.headers["set-cookie"]
    with session_factory() as session:
        mapping = session.scalars(select(LmsMapping).where(LmsMapping.external_id == "lms-user-42")).one()
        user = session.get(User, mapping.local_id)
        assert user is not None
        assert user.display_name == "Ada Lovelace"
        role = session.scalars(select(Enrollment.role).where(Enrollment.user_id == user.id)).one()
        assert role == "student"
    # The session cookie shows the page again; nothing else.
    again = api.client.get(TOOL + lti_service.STUDENT_PAGE_PATH)
    assert again.status_code == 200
    assert user.username in again.text
    # A second launch of the same LMS user is the same local user.
    assert full_launch(api, platform, "lms-user-42", [LEARNER], assignment="hw5").status_code == 200
    with session_factory() as session:
        assert (
            len(session.scalars(select(LmsMapping).where(LmsMapping.external_id == "lms-user-42")).all()) == 1
        )


def test_the_student_page_needs_a_live_session(api: Api) -> None:
    assert api.client.get(TOOL + lti_service.STUDENT_PAGE_PATH).status_code == 401
    api.client.cookies.set("autograde_lti", "forged", domain="testserver", path="/lti")
    assert api.client.get(TOOL + lti_service.STUDENT_PAGE_PATH).status_code == 401


@pytest.mark.parametrize(("roles", "expected"), [([INSTRUCTOR], "instructor"), ([TEACHING_ASSISTANT], "ta")])
def test_a_staff_launch_signs_the_dashboard_in(
    api: Api, platform: Platform, session_factory: sessionmaker[Session], roles: list[str], expected: str
) -> None:
    response = full_launch(api, platform, f"staff-{expected}", roles, assignment="hw5")
    assert response.status_code == 200, response.text
    assert "/dashboard/courses/demo/assignments/hw5/gradebook" in response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("autograde_dashboard=ag_")
    assert "SameSite=strict" in cookie
    with session_factory() as session:
        mapping = session.scalars(
            select(LmsMapping).where(LmsMapping.external_id == f"staff-{expected}")
        ).one()
        role = session.scalars(select(Enrollment.role).where(Enrollment.user_id == mapping.local_id)).one()
        assert role == expected
    token = cookie.split(";")[0].split("=", 1)[1]
    gradebook = api.client.get(
        "/api/v1/courses/demo/assignments/hw5/submissions", headers={"Authorization": f"Bearer {token}"}
    )
    assert gradebook.status_code == 200


def test_a_replayed_launch_is_refused(api: Api, platform: Platform) -> None:
    form = platform.launch_form(login(api, platform, "u1"), "u1", [LEARNER])
    assert launch(api, form).status_code == 200
    replay = launch(api, form)
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "unauthenticated"


def signed(platform: Platform, claims: dict[str, Any], key: str | None = None) -> str:
    kid = platform.registration.get_kid()
    return jwt.encode(claims, key or platform.private_key, algorithm="RS256", headers={"kid": kid})


def valid_claims(platform: Platform, nonce: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "forger",
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        lti_service.DEPLOYMENT_ID: DEPLOYMENT_ID,
        lti_service.VERSION: "1.3.0",
        lti_service.MESSAGE_TYPE: "LtiResourceLinkRequest",
        lti_service.ROLES: [INSTRUCTOR],
    }


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://evil.example"},
        {"aud": "someone-else"},
        {"exp": int(time.time()) - 3600},
        {"nonce": "not-the-logins-nonce"},
        {lti_service.DEPLOYMENT_ID: "another-deployment"},
        {lti_service.MESSAGE_TYPE: "LtiSubmissionReviewRequest"},
        {lti_service.ROLES: ["http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"]},
    ],
    ids=["issuer", "audience", "expired", "nonce", "deployment", "message-type", "no-role"],
)
def test_a_forged_or_stale_id_token_changes_nothing(
    api: Api, platform: Platform, session_factory: sessionmaker[Session], change: dict[str, Any]
) -> None:
    parameters = dict(parse_qsl(urlsplit(login(api, platform, "forger")).query))
    token = signed(platform, valid_claims(platform, parameters["nonce"]) | change)
    response = api.client.post(
        TOOL + lti_service.LAUNCH_PATH, data={"id_token": token, "state": parameters["state"]}
    )
    assert response.status_code in (401, 403, 422), response.text
    assert "error" in response.json()
    with session_factory() as session:
        assert session.scalars(select(LmsMapping).where(LmsMapping.external_id == "forger")).all() == []


def test_a_token_signed_by_another_key_is_refused(api: Api, platform: Platform) -> None:
    parameters = dict(parse_qsl(urlsplit(login(api, platform, "forger")).query))
    token = signed(platform, valid_claims(platform, parameters["nonce"]), key=new_private_key_pem())
    response = api.client.post(
        TOOL + lti_service.LAUNCH_PATH, data={"id_token": token, "state": parameters["state"]}
    )
    assert response.status_code == 401
    # The state was not used up by the failed try; a valid token for it still launches.
    good = signed(platform, valid_claims(platform, parameters["nonce"]))
    assert (
        api.client.post(
            TOOL + lti_service.LAUNCH_PATH, data={"id_token": good, "state": parameters["state"]}
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "data",
    [{"id_token": "x", "state": "unknown"}, {"id_token": "not.a.jwt", "state": "s"}, {"state": "s"}, {}],
)
def test_a_launch_without_a_known_state_or_token_is_refused(api: Api, data: dict[str, str]) -> None:
    response = api.client.post(TOOL + lti_service.LAUNCH_PATH, data=data)
    assert response.status_code in (401, 422)
    assert "error" in response.json()


def test_login_refuses_unknown_platforms_and_foreign_targets(api: Api, platform: Platform) -> None:
    query = {"iss": ISSUER, "login_hint": "u", "target_link_uri": "http://127.0.0.1:8000/lti/launch"}
    unknown = api.client.get(TOOL + "/lti/login", params=query | {"iss": "https://nobody"})
    assert unknown.status_code == 404
    foreign = api.client.get(
        TOOL + "/lti/login", params=query | {"target_link_uri": "https://evil.example/x"}
    )
    assert foreign.status_code == 422
    deployment = api.client.get(TOOL + "/lti/login", params=query | {"lti_deployment_id": "other"})
    assert deployment.status_code == 403
    posted = api.client.post(
        TOOL + "/lti/login", data=query | {"client_id": CLIENT_ID}, follow_redirects=False
    )
    assert posted.status_code == 302
    assert posted.headers["location"].startswith(platform.base_url + "/auth?")


def _platform_keys(api: Api, **changes: Any) -> None:
    """The application's cache of platform keys, under changed settings."""
    settings: Settings = api.client.app.state.settings  # type: ignore[attr-defined]
    api.client.app.state.platform_keys = PlatformKeys(settings.model_copy(update=changes))  # type: ignore[attr-defined]


def test_launches_fetch_the_platforms_keys_once_and_a_rotated_key_at_once(
    api: Api, platform: Platform
) -> None:
    _platform_keys(api, lti_jwks_refetch_seconds=0)
    for user in ("u1", "u2"):
        assert full_launch(api, platform, user, [LEARNER]).status_code == 200
    assert platform.jwks_fetches == 1  # the second launch used the cached set
    old_kid = platform.registration.get_kid()
    platform.rotate_key()
    assert platform.registration.get_kid() != old_kid
    # The new key's kid is not in the cached set: the set is fetched again, and the launch holds.
    assert full_launch(api, platform, "u3", [LEARNER]).status_code == 200
    assert platform.jwks_fetches == 2
    assert full_launch(api, platform, "u4", [LEARNER]).status_code == 200
    assert platform.jwks_fetches == 2


def test_unknown_kids_do_not_make_the_tool_refetch_within_the_cooldown(api: Api, platform: Platform) -> None:
    _platform_keys(api, lti_jwks_refetch_seconds=3600)
    assert full_launch(api, platform, "u1", [LEARNER]).status_code == 200
    platform.rotate_key()
    refused = full_launch(api, platform, "u2", [LEARNER])
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthenticated"
    assert platform.jwks_fetches == 1
