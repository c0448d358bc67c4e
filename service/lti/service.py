"""LTI 1.3, the tool side: a course's platform registration, the tool's signing keys (rotated, the
old one published for a grace period), the OIDC third-party login and the launch.

Every JWT and JWKS operation goes through PyJWT (docs/design.md): the id_token's signature is
checked against the platform's JWKS (PyJWKClient, one per platform with its cache:
platform_keys.py), and its issuer, audience, expiry and issued-at by jwt.decode; this module checks
what PyJWT cannot know: the nonce (once), the deployment, the message type and the LTI version.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy.orm import Session

from service.assignments.service import latest_snapshot
from service.auth.service import Principal, issue_token
from service.config import Environment, Settings
from service.courses.service import course_by_id, enroll, ensure_user, find_course, role_in, user_by_id
from service.errors import Conflict, Forbidden, NotFound, Unauthenticated, UnprocessableAnswer
from service.lms import secrets_box
from service.lti import repository as repository
from service.lti.platform_keys import PlatformKeys
from service.lti.schemas import Jwks, PlatformRegistration, PlatformView, ToolEndpoints
from service.models import (
    LmsMapping,
    LmsMappingKind,
    LtiLaunchSession,
    LtiLineItem,
    LtiNonce,
    LtiPlatform,
    LtiToolKey,
    Role,
    User,
    utcnow,
)

LOGIN_PATH = "/lti/login"
LAUNCH_PATH = "/lti/launch"
JWKS_PATH = "/.well-known/jwks.json"
STUDENT_PAGE_PATH = "/lti/assignment"
DEEP_LINK_PATH = "/lti/deep-link"

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = CLAIM + "message_type"
VERSION = CLAIM + "version"
DEPLOYMENT_ID = CLAIM + "deployment_id"
ROLES = CLAIM + "roles"
CUSTOM = CLAIM + "custom"
RESOURCE_LINK = CLAIM + "resource_link"
# Assignment and Grade Services (LTI AGS 2.0 section 3.1): where the tool sends scores.
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
# LTI Deep Linking 2.0: the request's settings, and the response's items and echoed data.
DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
DEEP_LINKING_DATA = "https://purl.imsglobal.org/spec/lti-dl/claim/data"
RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"
DEEP_LINKING_RESPONSE = "LtiDeepLinkingResponse"
MAX_DEEP_LINK_DATA = 4096

# The LIS v2 context roles (LTI 1.3 section A.2.2), full URIs and the short names the spec still
# allows. A teaching assistant is a sub-role of Instructor, so it is looked for first.
_LIS = "http://purl.imsglobal.org/vocab/lis/v2/membership"
TA_ROLES = frozenset({f"{_LIS}/Instructor#TeachingAssistant", "TeachingAssistant"})
INSTRUCTOR_ROLES = frozenset(
    {f"{_LIS}#Instructor", f"{_LIS}#Administrator", f"{_LIS}#ContentDeveloper", "Instructor"}
)
STUDENT_ROLES = frozenset({f"{_LIS}#Learner", f"{_LIS}/Learner#Learner", "Learner"})

RSA_KEY_BITS = 2048
MAX_URL = 2000
MAX_DISPLAY_NAME = 200
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


# ---- the tool's keys --------------------------------------------------------------------------


def rotate_tool_key(session: Session, settings: Settings) -> str:
    """A new key pair signs from now on; the previous one is retired but stays published for
    settings.lti_key_grace_seconds. Returns the new key's kid."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    kid = secrets.token_hex(16)
    public_jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    assert isinstance(public_jwk, dict)
    public_jwk |= {"kid": kid, "alg": "RS256", "use": "sig"}
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    now = utcnow()
    repository.retire_live_tool_keys(session, now)
    repository.add(
        session,
        LtiToolKey(
            kid=kid,
            private_key_encrypted=secrets_box.encrypt(settings, pem),
            public_jwk=public_jwk,
            created_at=now,
        ),
    )
    return kid


def ensure_tool_key(session: Session, settings: Settings) -> None:
    if repository.current_tool_key(session) is None:
        rotate_tool_key(session, settings)


def tool_jwks(session: Session, settings: Settings) -> Jwks:
    """The public halves of the live key and of the keys retired within the grace period."""
    retired_after = utcnow() - timedelta(seconds=settings.lti_key_grace_seconds)
    return Jwks(keys=[dict(key.public_jwk) for key in repository.published_tool_keys(session, retired_after)])


# ---- the platform registration ---------------------------------------------------------------


def tool_endpoints(settings: Settings) -> ToolEndpoints:
    base = settings.public_url
    return ToolEndpoints(
        login_url=base + LOGIN_PATH, launch_url=base + LAUNCH_PATH, jwks_url=base + JWKS_PATH
    )


def platform_of(
    session: Session, settings: Settings, principal: Principal, course_slug: str
) -> PlatformView | None:
    """The course's LMS registration for its staff (the dashboard shows it), None when there is
    none; no key is part of it."""
    course = find_course(session, course_slug)
    role = None if course is None else role_in(session, course.id, principal.user_id)
    if course is None or role is None:
        raise NotFound(f"No course {course_slug!r}.")
    if not role.is_staff:
        raise Forbidden("Only the course's TAs and instructors see its LMS registration.")
    platform = repository.platform_of_course(session, course.id)
    if platform is None:
        return None
    return PlatformView(
        course=course_slug,
        issuer=platform.issuer,
        client_id=platform.client_id,
        deployment_ids=list(platform.deployment_ids),
        auth_login_url=platform.auth_login_url,
        token_url=platform.token_url,
        jwks_url=platform.jwks_url,
        updated_at=platform.updated_at,
        tool=tool_endpoints(settings),
    )


def set_platform(
    session: Session, settings: Settings, principal: Principal, course_slug: str, body: PlatformRegistration
) -> PlatformView:
    """Register (or change) the LMS a course is launched from; instructors only."""
    course = find_course(session, course_slug)
    role = None if course is None else role_in(session, course.id, principal.user_id)
    if course is None or role is None:
        raise NotFound(f"No course {course_slug!r}.")
    if role is not Role.INSTRUCTOR:
        raise Forbidden("Only instructors register the course's LMS.")
    problems = {
        field: problem
        for field in ("auth_login_url", "token_url", "jwks_url")
        if (problem := _url_problem(settings, getattr(body, field)))
    }
    if problems:
        raise UnprocessableAnswer("The platform's URLs must be absolute http(s) URLs.", problems)
    deployment_ids = list(dict.fromkeys(body.deployment_ids))
    claimed = repository.platform_by_client(session, body.issuer, body.client_id)
    if claimed is not None and claimed.course_id != course.id:
        # A launch finds its course by (issuer, client id): two courses cannot share one.
        raise Conflict("Another course is registered with this issuer and client id.")
    platform = repository.platform_of_course(session, course.id)
    now = utcnow()
    if platform is None:
        platform = LtiPlatform(course_id=course.id, created_at=now)
    platform.issuer = body.issuer
    platform.client_id = body.client_id
    platform.deployment_ids = deployment_ids
    platform.auth_login_url = body.auth_login_url
    platform.token_url = body.token_url
    platform.jwks_url = body.jwks_url
    platform.updated_by_user_id = principal.user_id
    platform.updated_at = now
    repository.add(session, platform)
    ensure_tool_key(session, settings)
    return PlatformView(
        course=course_slug,
        issuer=platform.issuer,
        client_id=platform.client_id,
        deployment_ids=platform.deployment_ids,
        auth_login_url=platform.auth_login_url,
        token_url=platform.token_url,
        jwks_url=platform.jwks_url,
        updated_at=now,
        tool=tool_endpoints(settings),
    )


def _url_problem(settings: Settings, url: str) -> str | None:
    parts = urlsplit(url)
    # Development and the tests run a platform on loopback over http; a real LMS speaks https.
    allowed = {"https"} if settings.env is Environment.PRODUCTION else {"https", "http"}
    if parts.scheme not in allowed or not parts.hostname or parts.username or parts.password:
        return "must be an absolute " + " or ".join(sorted(allowed)) + " URL without credentials"
    return None


# ---- OIDC third-party login ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """The platform's login initiation (LTI 1.3 section 5.1.1, OIDC third-party login)."""

    iss: str
    login_hint: str
    target_link_uri: str
    lti_message_hint: str | None = None
    client_id: str | None = None
    lti_deployment_id: str | None = None


def start_login(session: Session, settings: Settings, request: LoginRequest) -> str:
    """Remember a fresh state and nonce; answer the platform's authorization URL to redirect to."""
    if request.client_id:
        platform = repository.platform_by_client(session, request.iss, request.client_id)
    else:
        candidates = repository.platforms_of_issuer(session, request.iss, limit=2)
        # Without a client id the issuer alone must name one registration.
        platform = candidates[0] if len(candidates) == 1 else None
    if platform is None:
        raise NotFound("No course is registered for this platform (issuer and client id).")
    if request.lti_deployment_id is not None and request.lti_deployment_id not in platform.deployment_ids:
        raise Forbidden("This deployment of the tool is not registered for the course.")
    endpoints = tool_endpoints(settings)
    if request.target_link_uri.split("?", 1)[0] != endpoints.launch_url:
        raise UnprocessableAnswer(
            "target_link_uri must be this tool's launch URL.", {"target_link_uri": endpoints.launch_url}
        )
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    repository.add(
        session,
        LtiNonce(
            state=state,
            nonce=nonce,
            platform_id=platform.id,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.lti_login_seconds),
        ),
    )
    parameters = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": platform.client_id,
        "redirect_uri": endpoints.launch_url,
        "login_hint": request.login_hint,
        "state": state,
        "nonce": nonce,
    }
    if request.lti_message_hint is not None:
        parameters["lti_message_hint"] = request.lti_message_hint
    return _with_query(platform.auth_login_url, parameters)


def _with_query(url: str, parameters: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(parameters.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---- the launch ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingLaunch:
    """A login this tool started and whose launch has not come yet: what checks the id_token."""

    platform_id: int
    issuer: str
    client_id: str
    jwks_url: str


def pending_launch(session: Session, state: str) -> PendingLaunch:
    found = repository.unused_nonce(session, state, utcnow())
    platform = None if found is None else repository.get_platform(session, found.platform_id)
    if found is None or platform is None:
        raise Unauthenticated("Unknown, expired or already used state: start again from the LMS.")
    return PendingLaunch(platform.id, platform.issuer, platform.client_id, platform.jwks_url)


def verify_id_token(keys: PlatformKeys, pending: PendingLaunch, id_token: str) -> dict[str, Any]:
    """The id_token's claims, once its signature (the platform's JWKS), issuer, audience, expiry
    and issued-at hold. May fetch the JWKS (cached per platform): call it outside a database
    transaction."""
    try:
        signing_key = keys.signing_key(pending.platform_id, pending.jwks_url, id_token)
        claims: dict[str, Any] = jwt.decode(
            id_token,
            signing_key,
            algorithms=["RS256"],
            audience=pending.client_id,
            issuer=pending.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
            leeway=60,
        )
    except jwt.PyJWKClientConnectionError:
        raise Unauthenticated("The platform's public keys (JWKS) could not be fetched.") from None
    except jwt.PyJWTError as error:
        raise Unauthenticated(f"The id_token is not valid: {error}") from None
    audience = claims["aud"]
    # Several audiences: the authorized party must be this tool (OIDC Core 3.1.3.7, LTI 5.1.2).
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != pending.client_id:
        raise Unauthenticated("The id_token is not valid: azp is not this tool's client id.")
    return claims


@dataclass(frozen=True, slots=True)
class DeepLinkRequest:
    """A checked deep linking launch: where the staff member's choice goes back to, and what of
    the request the response must carry (service/lti/deep_linking.py)."""

    platform_id: int
    course: str
    user_id: int
    deployment_id: str
    return_url: str
    # The platform's opaque `data` (JSON), echoed in the response (None: the request carried none).
    data: Any


@dataclass(frozen=True, slots=True)
class LaunchOutcome:
    role: Role
    course: str
    assignment: str | None
    username: str
    # Staff: an API token for the dashboard's cookie. Students: the launch session's cookie value.
    # A deep linking launch opens no session: empty.
    cookie_value: str
    deep_link: DeepLinkRequest | None = None


def _deep_linking_settings(settings: Settings, claims: dict[str, Any]) -> tuple[str, Any]:
    """The deep linking request's return URL and data (LTI Deep Linking 2.0 section 4.4.1); the
    request must accept an LTI resource link, the only kind of item this tool places."""
    found = claims.get(DEEP_LINKING_SETTINGS)
    if not isinstance(found, dict):
        raise UnprocessableAnswer("The deep linking request carries no deep_linking_settings claim.")
    return_url = found.get("deep_link_return_url")
    if not isinstance(return_url, str) or len(return_url) > MAX_URL or _url_problem(settings, return_url):
        raise UnprocessableAnswer(
            "The deep linking request's deep_link_return_url must be an absolute http(s) URL.",
            {"deep_link_return_url": "an absolute http(s) URL without credentials"},
        )
    accept_types = found.get("accept_types")
    if not isinstance(accept_types, list) or "ltiResourceLink" not in accept_types:
        raise UnprocessableAnswer(
            "The platform does not accept an LTI resource link here (accept_types).",
            {"accept_types": "must contain ltiResourceLink"},
        )
    # Opaque to the tool and echoed as given: usually a string, though some platforms send an object.
    data = found.get("data")
    if data is not None and len(json.dumps(data)) > MAX_DEEP_LINK_DATA:
        raise UnprocessableAnswer(
            f"The deep linking request's data must be at most {MAX_DEEP_LINK_DATA} characters as JSON."
        )
    return return_url, data


def complete_launch(
    session: Session, settings: Settings, pending: PendingLaunch, state: str, claims: dict[str, Any]
) -> LaunchOutcome:
    """Use the nonce (once), check the LTI claims, map the LMS user to ours with the LMS's role, and
    open a session on the launched assignment."""
    now = utcnow()
    nonce = claims.get("nonce")
    if not isinstance(nonce, str) or not repository.use_nonce(session, state, nonce, now):
        raise Unauthenticated("The id_token's nonce does not match this login, or was used already.")
    platform = repository.get_platform(session, pending.platform_id)
    if platform is None:
        raise Unauthenticated("The platform registration was removed during the login.")
    if claims.get(DEPLOYMENT_ID) not in platform.deployment_ids:
        raise Forbidden("This deployment of the tool is not registered for the course.")
    if claims.get(VERSION) != "1.3.0":
        raise UnprocessableAnswer("Only LTI 1.3.0 launches are understood.")
    message_type = claims.get(MESSAGE_TYPE)
    if message_type not in (RESOURCE_LINK_REQUEST, DEEP_LINKING_REQUEST):
        raise UnprocessableAnswer(
            "Only resource link (LtiResourceLinkRequest) and deep linking (LtiDeepLinkingRequest)"
            " launches are understood."
        )
    subject = claims["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= 255:
        raise UnprocessableAnswer("The id_token's sub must be a string of at most 255 characters.")
    role = _course_role(claims.get(ROLES))
    course = course_by_id(session, platform.course_id)
    assert course is not None  # the registration's row cascades with its course
    if message_type == DEEP_LINKING_REQUEST:
        # Placing an assignment in the LMS is the course staff's: checked before anything is stored.
        if not role.is_staff:
            raise Forbidden("Only the course's TAs and instructors place its assignments in the LMS.")
        deep_link = _deep_linking_settings(settings, claims)
        user = _map_user(session, course.id, platform.issuer, subject, claims.get("name"))
        enroll(session, course, user, role)
        request = DeepLinkRequest(
            platform.id, course.slug, user.id, str(claims[DEPLOYMENT_ID]), deep_link[0], deep_link[1]
        )
        return LaunchOutcome(role, course.slug, None, user.username, "", request)
    assignment = _launched_assignment(session, course.slug, claims.get(CUSTOM))
    if assignment is not None:
        _remember_line_item(session, settings, platform.id, course.slug, assignment, claims)
    user = _map_user(session, course.id, platform.issuer, subject, claims.get("name"))
    enroll(session, course, user, role)
    if role.is_staff:
        cookie_value = issue_token(session, user.id, "lti launch")
    else:
        cookie_value = secrets.token_urlsafe(32)
        repository.add(
            session,
            LtiLaunchSession(
                token_hash=_hash(cookie_value),
                user_id=user.id,
                course_id=course.id,
                assignment_slug=assignment,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.dashboard_session_seconds),
            ),
        )
    return LaunchOutcome(role, course.slug, assignment, user.username, cookie_value)


def _course_role(roles: object) -> Role:
    if not isinstance(roles, list):
        raise Forbidden("The launch carries no roles in the course.")
    given = {role for role in roles if isinstance(role, str)}
    if given & TA_ROLES:
        return Role.TA
    if given & INSTRUCTOR_ROLES:
        return Role.INSTRUCTOR
    if given & STUDENT_ROLES:
        return Role.STUDENT
    raise Forbidden("The launch carries no learner, teaching assistant or instructor role in the course.")


def _launched_assignment(session: Session, course_slug: str, custom: object) -> str | None:
    """The assignment the LMS placed: the link's custom parameter `assignment` (its slug); none
    means the course as a whole."""
    if not isinstance(custom, dict) or custom.get("assignment") in (None, ""):
        return None
    slug = custom["assignment"]
    if not isinstance(slug, str) or len(slug) > 64:
        raise UnprocessableAnswer("The custom parameter assignment must be an assignment's slug.")
    return latest_snapshot(session, course_slug, slug).assignment_slug


def _ags_url(settings: Settings, value: object) -> str | None:
    if isinstance(value, str) and len(value) <= MAX_URL and _url_problem(settings, value) is None:
        return value
    return None


def _remember_line_item(
    session: Session,
    settings: Settings,
    platform_id: int,
    course_slug: str,
    slug: str,
    claims: dict[str, Any],
) -> None:
    """Where the assignment's scores go: the launch's Assignment and Grade Services claim names
    the line items container (and the link's own line item, when the LMS made one). A claim that
    is absent or unusable leaves what an earlier launch stored."""
    endpoint = claims.get(AGS_ENDPOINT)
    if not isinstance(endpoint, dict):
        return
    lineitems, lineitem = (
        _ags_url(settings, endpoint.get("lineitems")),
        _ags_url(settings, endpoint.get("lineitem")),
    )
    if lineitems is None and lineitem is None:
        return
    link = claims.get(RESOURCE_LINK)
    link_id = link.get("id") if isinstance(link, dict) else None
    resource_link_id = link_id if isinstance(link_id, str) and 0 < len(link_id) <= 255 else None
    assignment_id = latest_snapshot(session, course_slug, slug).assignment_id
    now = utcnow()
    found = repository.line_item(session, platform_id, assignment_id)
    if found is None:
        found = LtiLineItem(platform_id=platform_id, assignment_id=assignment_id, created_at=now)
    found.lineitems_url = lineitems or found.lineitems_url
    found.lineitem_url = lineitem or found.lineitem_url
    found.resource_link_id = resource_link_id or found.resource_link_id
    found.updated_at = now
    repository.add_line_item(session, found)


def _map_user(session: Session, course_id: int, issuer: str, subject: str, name: object) -> User:
    """Our user for the LMS user: the course's mapping, else the user an earlier launch from the
    same platform created (the username is derived from issuer and sub, so it is the same person),
    else a new user. The mapping is recorded for the course."""
    mapped = repository.mapped_local_id(session, course_id, LmsMappingKind.USER, subject)
    found = None if mapped is None else user_by_id(session, mapped)
    if found is not None:
        return found
    username = "lti-" + hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:24]
    display = _CONTROL_CHARACTERS.sub("", name)[:MAX_DISPLAY_NAME].strip() if isinstance(name, str) else ""
    user = ensure_user(session, username, display or username)
    if mapped is None:
        repository.add(
            session,
            LmsMapping(course_id=course_id, kind=LmsMappingKind.USER, external_id=subject, local_id=user.id),
        )
    return user


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# ---- the student's page after a launch --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StudentSession:
    principal: Principal
    course: str
    assignment: str | None


def student_session(session: Session, cookie_value: str | None) -> StudentSession:
    found = (
        repository.live_launch_session(session, _hash(cookie_value), utcnow())
        if cookie_value and len(cookie_value) <= 128
        else None
    )
    if found is None:
        raise Unauthenticated("No LTI session: launch the assignment from the LMS again.")
    user = user_by_id(session, found.user_id)
    course = course_by_id(session, found.course_id)
    if user is None or course is None:
        raise Unauthenticated("No LTI session: launch the assignment from the LMS again.")
    return StudentSession(Principal(user.id, user.username), course.slug, found.assignment_slug)


# ---- what the score passback (service/lti/passback.py) reads and stores -----------------------


def signing_key(session: Session, settings: Settings) -> tuple[str, str]:
    """The kid and private key (PEM) of the tool's live key: it signs the token requests."""
    ensure_tool_key(session, settings)
    key = repository.current_tool_key(session)
    assert key is not None  # ensure_tool_key made one
    return key.kid, secrets_box.decrypt(settings, key.private_key_encrypted)


def store_line_item_url(session: Session, line_item_id: int, url: str) -> None:
    """The line item found or created for an assignment: later scores go straight to it."""
    repository.set_line_item_url(session, line_item_id, url, utcnow())
