"""LTI Deep Linking against `lti1p3platform` as the LMS: the platform's LtiDeepLinkingRequest (its
picker placement) reaches the tool's picker for the course's staff, the chosen assignment comes back
as a signed LtiDeepLinkingResponse that lti1p3platform accepts (signature checked against the tool's
JWKS) and whose every claim is checked here with PyJWT, and a launch of the placed link lands on the
assignment. A student's, a malformed or a forged one changes nothing. Real SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.lti import service as lti_service
from service.models import Enrollment, LmsMapping
from tests.conftest import Api
from tests.lti_platform import (
    CLIENT_ID,
    DEPLOYMENT_ID,
    INSTRUCTOR,
    ISSUER,
    LEARNER,
    TEACHING_ASSISTANT,
    Platform,
    running_platform,
)
from tests.test_lti import TOOL, launch, login

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"
HW5_TITLE = "HW5: Recurrent networks and attention"


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


def deep_linking_launch(api: Api, platform: Platform, user_id: str, roles: list[str], **options: Any) -> Any:
    form = platform.deep_linking_form(login(api, platform, user_id), user_id, roles, **options)
    return launch(api, form)


def form_field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, page
    return html.unescape(found.group(1))


def choose(api: Api, ticket: str, assignment: str, **headers: str) -> Any:
    return api.client.post(
        TOOL + lti_service.DEEP_LINK_PATH, data={"ticket": ticket, "assignment": assignment}, headers=headers
    )


@pytest.mark.parametrize("role", [INSTRUCTOR, TEACHING_ASSISTANT])
def test_staff_place_an_assignment_and_its_link_launches_it(
    api: Api, platform: Platform, session_factory: sessionmaker[Session], role: str
) -> None:
    data = {"session": "platform-opaque-1"}
    picker = deep_linking_launch(api, platform, "lms-teacher-9", [role], data=data)
    assert picker.status_code == 200, picker.text
    assert HW5_TITLE in picker.text
    assert 'value="hw5"' in picker.text
    assert "set-cookie" not in picker.headers  # the picker opens no session

    answer = choose(api, form_field(picker.text, "ticket"), "hw5")
    assert answer.status_code == 200, answer.text
    action = re.search(r'<form method="post" action="([^"]+)"', answer.text)
    assert action is not None
    assert html.unescape(action.group(1)) == platform.deep_link_return_url
    token = form_field(answer.text, "JWT")

    # The LMS's side: lti1p3platform verifies the signature with the tool's JWKS and takes the item.
    (item,) = platform.take_deep_linking_response(token)
    assert item["type"] == "ltiResourceLink"

    # Every claim, checked with the tool's public JWKS as served at its well-known path.
    jwks = jwt.PyJWKSet.from_dict(api.client.get("/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(token)["kid"]
    (key,) = [key for key in jwks.keys if key.key_id == kid]
    claims = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=ISSUER,
        issuer=CLIENT_ID,
        options={"require": ["exp", "iat", "iss", "aud", "nonce"]},
    )
    assert claims["exp"] > claims["iat"]
    assert claims["nonce"]
    assert claims[CLAIM + "deployment_id"] == DEPLOYMENT_ID
    assert claims[CLAIM + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[CLAIM + "version"] == "1.3.0"
    assert claims[DL_CLAIM + "data"] == data
    assert claims[DL_CLAIM + "content_items"] == [
        {
            "type": "ltiResourceLink",
            "title": HW5_TITLE,
            "url": "http://127.0.0.1:8000/lti/launch",
            "custom": {"assignment": "hw5"},
            "lineItem": {"label": HW5_TITLE, "scoreMaximum": 27.0, "resourceId": "hw5", "tag": "autograde"},
        }
    ]
    with session_factory() as session:
        mapping = session.scalars(select(LmsMapping).where(LmsMapping.external_id == "lms-teacher-9")).one()
        enrolled = session.scalars(
            select(Enrollment.role).where(Enrollment.user_id == mapping.local_id)
        ).one()
        assert enrolled == ("instructor" if role == INSTRUCTOR else "ta")

    # The LMS launches the placed link with the item's custom parameters: the student lands on hw5.
    authentication = login(api, platform, "lms-student-3")
    form = platform.launch_form(authentication, "lms-student-3", [LEARNER], item["custom"])
    student = launch(api, form)
    assert student.status_code == 200, student.text
    assert f"<h1>{HW5_TITLE}</h1>" in student.text


def test_the_max_score_in_the_line_item_is_the_assignments_points(api: Api, platform: Platform) -> None:
    hw5 = api.get("instructor", "/api/v1/courses/demo/assignments/hw5").json()
    picker = deep_linking_launch(api, platform, "lms-teacher-9", [INSTRUCTOR])
    token = form_field(choose(api, form_field(picker.text, "ticket"), "hw5").text, "JWT")
    (item,) = platform.take_deep_linking_response(token)
    assert item["lineItem"]["scoreMaximum"] == hw5["max_score"]
    # No data in the request: none in the response.
    assert DL_CLAIM + "data" not in jwt.decode(token, options={"verify_signature": False})


def test_a_students_deep_linking_launch_is_refused(
    api: Api, platform: Platform, session_factory: sessionmaker[Session]
) -> None:
    response = deep_linking_launch(api, platform, "lms-student-3", [LEARNER])
    assert response.status_code == 403
    assert response.json()["error"]["code"]
    with session_factory() as session:  # nothing recorded: no mapping, no enrollment
        mappings = select(LmsMapping).where(LmsMapping.external_id == "lms-student-3")
        assert session.scalars(mappings).all() == []


def test_a_request_that_takes_no_resource_link_is_a_422(api: Api, platform: Platform) -> None:
    response = deep_linking_launch(
        api, platform, "lms-teacher-9", [INSTRUCTOR], accept_types={"link", "html"}
    )
    assert response.status_code == 422
    assert "accept_types" in response.json()["error"]["details"]


def test_a_forged_or_foreign_choice_is_refused(api: Api, platform: Platform, settings: Settings) -> None:
    picker = deep_linking_launch(api, platform, "lms-teacher-9", [INSTRUCTOR])
    ticket = form_field(picker.text, "ticket")
    # A ticket signed with another key (an attacker's guess), or one altered: 401.
    claims = jwt.decode(ticket, options={"verify_signature": False})
    forged = jwt.encode(claims | {"return_url": "https://evil.example/x"}, "x" * 32, algorithm="HS256")
    assert choose(api, forged, "hw5").status_code == 401
    assert choose(api, ticket[:-2] + "AA", "hw5").status_code == 401
    # Posted from another site's page: 403, even with a good ticket.
    assert choose(api, ticket, "hw5", origin="https://evil.example").status_code == 403
    # An assignment that is not the course's: 404.
    assert choose(api, ticket, "no-such-assignment").status_code == 404
    # The staff member left the course since: 403.
    with api.client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        mapping = session.scalars(select(LmsMapping).where(LmsMapping.external_id == "lms-teacher-9")).one()
        enrollment = session.scalars(select(Enrollment).where(Enrollment.user_id == mapping.local_id)).one()
        session.delete(enrollment)
        session.commit()
    assert choose(api, ticket, "hw5").status_code == 403
