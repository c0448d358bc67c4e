"""LTI Deep Linking 2.0, the tool side: after a deep linking launch (service.complete_launch checked
it and its staff role) the staff member picks one of the course's assignments, and the tool answers
the platform with a signed LtiDeepLinkingResponse carrying one LTI resource link to it.

Between the launch and the choice the request lives in a *ticket*, a short-lived JWT (HS256, a key
derived from AUTOGRADE_SECRET_KEY) in the picker's form: it cannot be forged, so a form posted from
another site is refused (the ticket is the form's CSRF token), and it needs no cookie, which a
picker inside the LMS's iframe would not get. The response is signed with the tool's live key
(RS256, its kid in the header): the platform checks it against the tool's JWKS. Every JWT goes
through PyJWT (docs/design.md)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy.orm import Session

from service.assignments.service import assignments_taught_by, latest_snapshot
from service.auth.service import Principal
from service.config import Settings
from service.courses.service import course_by_id, role_in, user_by_id
from service.errors import Forbidden, Unauthenticated
from service.lti import repository
from service.lti import service as service

TICKET_SECONDS = 1800
TICKET_AUDIENCE = "autograde:lti-deep-link"
RESPONSE_SECONDS = 300
# The line item's tag: the LMS may show it; the passback finds the line item by resourceId.
LINE_ITEM_TAG = "autograde"
_TICKET_KEY_INFO = b"autograde lti deep-link ticket v1\n"


@dataclass(frozen=True, slots=True)
class PickerEntry:
    slug: str
    title: str
    points: float


@dataclass(frozen=True, slots=True)
class Picker:
    course: str
    username: str
    ticket: str
    assignments: list[PickerEntry]


@dataclass(frozen=True, slots=True)
class DeepLinkAnswer:
    """The auto-submitting form's action and its one field (JWT)."""

    return_url: str
    jwt: str
    title: str


def _ticket_key(settings: Settings) -> bytes:
    # Its own key, not the secret key itself: a ticket says nothing usable elsewhere.
    return hashlib.sha256(_TICKET_KEY_INFO + settings.secret_key.encode()).digest()


def issue_ticket(settings: Settings, request: service.DeepLinkRequest) -> str:
    now = int(time.time())
    claims = {
        "aud": TICKET_AUDIENCE,
        "iat": now,
        "exp": now + TICKET_SECONDS,
        "platform": request.platform_id,
        "course": request.course,
        "user": request.user_id,
        "deployment": request.deployment_id,
        "return_url": request.return_url,
        "data": request.data,
    }
    return jwt.encode(claims, _ticket_key(settings), algorithm="HS256")


def _read_ticket(settings: Settings, ticket: str) -> service.DeepLinkRequest:
    try:
        claims = jwt.decode(
            ticket,
            _ticket_key(settings),
            algorithms=["HS256"],
            audience=TICKET_AUDIENCE,
            options={"require": ["exp", "iat", "aud"]},
        )
        return service.DeepLinkRequest(
            platform_id=int(claims["platform"]),
            course=str(claims["course"]),
            user_id=int(claims["user"]),
            deployment_id=str(claims["deployment"]),
            return_url=str(claims["return_url"]),
            data=claims.get("data"),
        )
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        raise Unauthenticated(
            "The picker's form is stale or was not made by this tool: start again from the LMS."
        ) from None


def picker(session: Session, settings: Settings, request: service.DeepLinkRequest) -> Picker:
    """The course's assignments for the staff member to choose from."""
    user = user_by_id(session, request.user_id)
    assert user is not None  # the launch mapped them in this transaction's predecessor
    principal = Principal(user.id, user.username)
    entries = [
        PickerEntry(
            taught.assignment,
            taught.title,
            latest_snapshot(session, taught.course, taught.assignment).max_score,
        )
        for taught in assignments_taught_by(session, principal)
        if taught.course == request.course
    ]
    return Picker(request.course, user.username, issue_ticket(settings, request), entries)


def answer(session: Session, settings: Settings, ticket: str, slug: str) -> DeepLinkAnswer:
    """The signed LtiDeepLinkingResponse placing the chosen assignment: the ticket's staff member
    must still teach the course and the platform still be registered for it."""
    request = _read_ticket(settings, ticket)
    platform = repository.get_platform(session, request.platform_id)
    course = None if platform is None else course_by_id(session, platform.course_id)
    if platform is None or course is None or course.slug != request.course:
        raise Unauthenticated("The course's LMS registration changed: start again from the LMS.")
    role = role_in(session, course.id, request.user_id)
    if role is None or not role.is_staff:
        raise Forbidden("Only the course's TAs and instructors place its assignments in the LMS.")
    if request.deployment_id not in platform.deployment_ids:
        raise Forbidden("This deployment of the tool is not registered for the course.")
    snapshot = latest_snapshot(session, course.slug, slug)  # NotFound: not an assignment of the course
    item: dict[str, Any] = {
        "type": "ltiResourceLink",
        "title": snapshot.title,
        "url": service.tool_endpoints(settings).launch_url,
        # The launch of this link reads it (service._launched_assignment): it lands on the assignment.
        "custom": {"assignment": snapshot.assignment_slug},
        "lineItem": {
            "label": snapshot.title,
            "scoreMaximum": snapshot.max_score,
            # The passback finds the LMS's line item by this (service/lti/passback.py).
            "resourceId": snapshot.assignment_slug,
            "tag": LINE_ITEM_TAG,
        },
    }
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": platform.client_id,
        "aud": platform.issuer,
        "iat": now,
        "exp": now + RESPONSE_SECONDS,
        "nonce": secrets.token_urlsafe(24),
        service.DEPLOYMENT_ID: request.deployment_id,
        service.MESSAGE_TYPE: service.DEEP_LINKING_RESPONSE,
        service.VERSION: "1.3.0",
        service.CONTENT_ITEMS: [item],
    }
    if request.data is not None:
        claims[service.DEEP_LINKING_DATA] = request.data
    kid, private_key = service.signing_key(session, settings)
    token = jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})
    return DeepLinkAnswer(request.return_url, token, snapshot.title)
