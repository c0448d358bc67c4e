"""Inbound LMS events (docs/lms.md): Standard Webhooks signatures verified against the course's live
secrets, a webhook-id acted on once, and each event done the way the HTTP API does it, in the
caller's one transaction (a refused event leaves nothing behind, not even its webhook-id)."""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.assignments.service import resolve_access
from service.auth.service import Principal
from service.config import Settings
from service.courses import service as courses
from service.errors import (
    Forbidden,
    NotFound,
    PayloadTooLarge,
    StaleWebhook,
    UnprocessableEvent,
    WebhookRejected,
)
from service.lms.secrets_box import UnreadableSecret, decrypt, encrypt
from service.lms_inbound import repository as repository
from service.lms_inbound.schemas import (
    SECRET_PREFIX,
    AssignmentMappingSet,
    AssignmentMappingView,
    EnrollmentCreatedData,
    EnrollmentDeletedData,
    InboundSecretSet,
    InboundSecretStatus,
    InboundSecretView,
    LmsEvent,
    LmsEventResult,
    SubmissionCreatedData,
    UserMappingSet,
    UserMappingView,
)
from service.models import Course, LmsMappingKind, Role, utcnow
from service.submissions import service as submissions
from service.submissions.schemas import SubmissionAccepted, SubmissionCreate, UploadedFile
from service.submissions.untrusted_json import UnacceptableJSON, has_control_characters, load_strict

logger = logging.getLogger(__name__)

# An event is {"type", "timestamp", "data": {..., "answers": {question: answer}}}: the answers'
# own depth (a tensor's dimensions) plus four.
MAX_EVENT_DEPTH = 20
GENERATED_SECRET_BYTES = 32
# Expired webhook ids forgotten per event received: more than arrive per event, so none pile up.
PRUNE_BATCH = 100


@dataclass(frozen=True, slots=True)
class SignatureHeaders:
    webhook_id: str | None
    timestamp: str | None
    signature: str | None


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """The outcome the route logs and answers with; `course` is None when none could be read."""

    course: str | None
    result: LmsEventResult


def _course_as(session: Session, principal: Principal, slug: str, *, instructor_only: bool) -> Course:
    """The course, for its staff (or its instructors); 404 outside it, 403 to its students."""
    course = courses.find_course(session, slug)
    role = courses.role_in(session, course.id, principal.user_id) if course is not None else None
    if course is None or role is None:
        raise NotFound(f"No course {slug!r}.")
    if instructor_only and role is not Role.INSTRUCTOR:
        raise Forbidden("Only the course's instructors set its LMS secret.")
    if not role.is_staff:
        raise Forbidden("Only the course's TAs and instructors map LMS ids.")
    return course


def set_inbound_secret(
    session: Session,
    settings: Settings,
    principal: Principal,
    course_slug: str,
    body: InboundSecretSet | None,
) -> InboundSecretView:
    """A new secret for the course's inbound events; the ones it replaces keep verifying for the
    grace period, so that the LMS can switch over without a refused call."""
    course = _course_as(session, principal, course_slug, instructor_only=True)
    given = body.secret if body is not None else None
    secret = given or SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()
    now = utcnow()
    replaced = repository.live_secrets(session, course.id, now)
    until = now + timedelta(seconds=settings.lms_inbound_secret_grace_seconds)
    repository.retire_live_secrets(session, course.id, until, now)
    row = repository.add_secret(session, course.id, encrypt(settings, secret), now)
    logger.info(
        "lms inbound secret set course=%s by=%s replaced=%d", course.slug, principal.username, len(replaced)
    )
    live = 1 + (len(replaced) if until > now else 0)
    return InboundSecretView(
        course=course.slug,
        secret=None if given else secret,
        created_at=row.created_at,
        previous_valid_until=until if replaced else None,
        live_secrets=live,
    )


def inbound_secret_status(session: Session, principal: Principal, course_slug: str) -> InboundSecretStatus:
    """How many secrets verify the course's events now (the course's staff; the dashboard shows
    it), and since when the newest; nothing of the secrets."""
    course = _course_as(session, principal, course_slug, instructor_only=False)
    live = repository.live_secrets(session, course.id, utcnow())
    return InboundSecretStatus(
        course=course.slug, live_secrets=len(live), set_at=max((row.created_at for row in live), default=None)
    )


def _external_id(external_id: str) -> str:
    if has_control_characters(external_id):
        raise UnprocessableEvent("An LMS id may not hold control characters.")
    return external_id


def set_user_mapping(
    session: Session, principal: Principal, course_slug: str, external_id: str, body: UserMappingSet
) -> UserMappingView:
    """Staff: the LMS's id for a member of the course (created or changed)."""
    course = _course_as(session, principal, course_slug, instructor_only=False)
    user = courses.find_user(session, body.username)
    if user is None or courses.role_in(session, course.id, user.id) is None:
        raise NotFound(f"No user {body.username!r} in course {course_slug!r}.")
    repository.set_mapping(
        session, course.id, LmsMappingKind.USER, _external_id(external_id), user.id, utcnow()
    )
    return UserMappingView(course=course.slug, external_id=external_id, username=user.username)


def set_assignment_mapping(
    session: Session, principal: Principal, course_slug: str, external_id: str, body: AssignmentMappingSet
) -> AssignmentMappingView:
    """Staff: the LMS's id for one of the course's assignments (created or changed)."""
    course = _course_as(session, principal, course_slug, instructor_only=False)
    access = resolve_access(session, principal, course_slug, body.assignment)
    repository.set_mapping(
        session,
        course.id,
        LmsMappingKind.ASSIGNMENT,
        _external_id(external_id),
        access.snapshot.assignment_id,
        utcnow(),
    )
    return AssignmentMappingView(course=course.slug, external_id=external_id, assignment=body.assignment)


def receive_event(
    session: Session, settings: Settings, body: bytes, headers: SignatureHeaders
) -> ReceivedEvent:
    """Verify a signed event and act on it once. The course comes from the (not yet verified)
    payload only to pick the secrets; nothing in it is used before the signature holds."""
    text = _utf8(body)
    document = _json(text)
    course_slug = _course_slug(document)
    # An unknown course is refused by the signature check, exactly like a bad signature: who
    # cannot sign learns nothing of which courses exist.
    course = courses.find_course(session, course_slug)
    webhook_id = _verify(session, settings, course, course_slug, text, headers)
    assert course is not None  # no secret verifies an event of an unknown course
    try:
        event = LmsEvent.model_validate(document).root
    except ValidationError as error:
        raise UnprocessableEvent("The event is malformed.", details=_problems(error)) from None
    now = utcnow()
    # Ids older than the replay window are forgotten here, a batch per verified event (so no
    # unsigned call makes the service write): a replay that old is refused as stale already.
    repository.prune_received_webhooks(
        session, now - timedelta(seconds=settings.lms_inbound_webhook_id_seconds), PRUNE_BATCH
    )
    if not repository.record_webhook(session, course.id, webhook_id, now):
        return ReceivedEvent(course.slug, LmsEventResult(status="duplicate"))
    result = LmsEventResult(status="processed", type=event.type)
    match event.type:
        case "submission.created":
            accepted = _create_submission(session, settings, course, webhook_id, event.data)
            result.submission = accepted
        case "enrollment.created":
            _enroll(session, course, event.data)
        case "enrollment.deleted":
            _unenroll(session, course, event.data)
    return ReceivedEvent(course.slug, result)


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnprocessableEvent("The body is not UTF-8.") from None


def _json(text: str) -> Any:
    try:
        return load_strict(text, MAX_EVENT_DEPTH)
    except UnacceptableJSON as error:
        raise UnprocessableEvent(f"The body cannot be accepted: {error}.") from None
    except ValueError:
        raise UnprocessableEvent("The body is not JSON.") from None


def _course_slug(document: Any) -> str:
    data = document.get("data") if isinstance(document, dict) else None
    slug = data.get("course") if isinstance(data, dict) else None
    if not isinstance(slug, str) or not 1 <= len(slug) <= 64:
        raise UnprocessableEvent("The event names no course: `data.course` must be the course's slug.")
    return slug


def _verify(
    session: Session,
    settings: Settings,
    course: Course | None,
    course_slug: str,
    text: str,
    headers: SignatureHeaders,
) -> str:
    """The verified webhook-id. Each live secret of the course is tried (several during a rotation);
    the standardwebhooks library checks the timestamp (within 5 minutes) and the HMAC-SHA256.

    A course that does not exist, or has no usable secret, is checked against a throwaway secret
    nobody holds: the same checks run in the same order, and the answer (stale, or no match) is
    the one a known course gives to a caller without its secret."""
    if not (headers.webhook_id and headers.timestamp and headers.signature):
        raise WebhookRejected("The webhook-id, webhook-timestamp and webhook-signature headers are required.")
    as_sent = {
        "webhook-id": headers.webhook_id,
        "webhook-timestamp": headers.timestamp,
        "webhook-signature": headers.signature,
    }
    keys = []
    for row in [] if course is None else repository.live_secrets(session, course.id, utcnow()):
        try:
            keys.append(decrypt(settings, row.secret_encrypted))
        except UnreadableSecret:
            # The encryption key changed: the instructor must set the secret again.
            logger.error("lms inbound secret %d of course %r cannot be decrypted", row.id, course_slug)
    if not keys:
        # Told to the operator's log only (the caller's answer is a plain mismatch).
        logger.info(
            "lms event for course %r: %s",
            course_slug,
            "no such course" if course is None else "the course has no inbound secret",
        )
        keys = [SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()]
    for key in keys:
        try:
            Webhook(key).verify(text, as_sent, json_parse=False)
        except WebhookVerificationError as error:
            # Raised before any signature is compared, the same for every key.
            if str(error).startswith("Message timestamp"):
                raise StaleWebhook("The webhook-timestamp is more than 5 minutes from now.") from None
        except ValueError:
            # A signature the library cannot split or decode (`v1,<base64>` expected): no match.
            continue
        else:
            return headers.webhook_id
    raise WebhookRejected("The signature does not match any inbound secret of the course.")


def _problems(error: ValidationError) -> list[dict[str, str]]:
    return [
        {"loc": ".".join(str(part) for part in item["loc"]), "msg": item["msg"]}
        for item in error.errors(include_url=False)[:20]
    ]


def _create_submission(
    session: Session, settings: Settings, course: Course, webhook_id: str, data: SubmissionCreatedData
) -> SubmissionAccepted:
    """The HTTP API's submission path, with the mapped student as the principal: the same
    validation, policy, attempt and rate limits; the webhook-id is the Idempotency-Key."""
    user = repository.mapped_user(session, course.id, data.user)
    if user is None:
        raise UnprocessableEvent(f"No user of course {course.slug!r} is mapped to LMS user {data.user!r}.")
    if courses.role_in(session, course.id, user.id) is None:
        raise UnprocessableEvent(f"LMS user {data.user!r} is {user.username!r}, who is not in the course.")
    slug = repository.mapped_assignment_slug(session, course.id, data.assignment)
    if slug is None:
        raise UnprocessableEvent(
            f"No assignment of course {course.slug!r} is mapped to LMS assignment {data.assignment!r}."
        )
    command = submissions.NewSubmission(
        Principal(user.id, user.username),
        course.slug,
        slug,
        SubmissionCreate(answers=data.answers),
        idempotency_key=f"lms:{webhook_id}",
        files=[_upload(settings, file.question, file.name, file.content_base64) for file in data.files],
    )
    return submissions.accept_submission(session, settings, command)


def _upload(settings: Settings, question: str, name: str | None, content_base64: str) -> UploadedFile:
    # Four base64 characters carry three bytes: refuse before decoding what cannot fit.
    if len(content_base64) > 4 * (settings.max_upload_bytes // 3 + 1):
        raise PayloadTooLarge(f"The file for {question} exceeds {settings.max_upload_bytes} bytes.")
    try:
        content = base64.b64decode(content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise UnprocessableEvent(f"The file for {question} is not base64.") from None
    if len(content) > settings.max_upload_bytes:
        raise PayloadTooLarge(f"The file for {question} exceeds {settings.max_upload_bytes} bytes.")
    filename = name or f"{question}.ipynb"
    if has_control_characters(filename):
        raise UnprocessableEvent(f"The file name for {question} holds control characters (or a NUL).")
    return UploadedFile(question, filename, content)


def _enroll(session: Session, course: Course, data: EnrollmentCreatedData) -> None:
    """Enroll the user (created if new) with the LMS's role, and map the LMS's id to them."""
    user = courses.ensure_user(session, data.username)
    courses.enroll(session, course, user, Role(data.role))
    repository.set_mapping(
        session, course.id, LmsMappingKind.USER, _external_id(data.user), user.id, utcnow()
    )


def _unenroll(session: Session, course: Course, data: EnrollmentDeletedData) -> None:
    """Take the mapped user out of the course; their submissions stay, as does the mapping (a
    later enrollment.created brings them back to the same account)."""
    user = repository.mapped_user(session, course.id, _external_id(data.user))
    if user is None:
        raise UnprocessableEvent(f"No user of course {course.slug!r} is mapped to LMS user {data.user!r}.")
    courses.unenroll(session, course, user)
