"""The inbound LMS routes: the course's inbound secret and id mappings (staff, bearer token), and
POST /api/v1/lms/events, which no token opens: the Standard Webhooks signature authenticates it."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request

from service.api import RequestScope, Scope, error_responses
from service.errors import AppError
from service.lms_inbound import service as service
from service.lms_inbound.schemas import (
    AssignmentMappingSet,
    AssignmentMappingView,
    InboundSecretSet,
    InboundSecretView,
    LmsEvent,
    LmsEventResult,
    UserMappingSet,
    UserMappingView,
)
from service.openapi import request_body_schema

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["lms"])

ExternalId = Annotated[str, Path(min_length=1, max_length=255)]
# Printable ASCII: it is signed, stored and logged as sent.
WebhookIdHeader = Annotated[str | None, Header(alias="webhook-id", max_length=128, pattern="^[!-~]+$")]
TimestampHeader = Annotated[str | None, Header(alias="webhook-timestamp", max_length=32)]
# Several signatures (space-separated) while the LMS rotates its secret.
SignatureHeader = Annotated[str | None, Header(alias="webhook-signature", max_length=4096)]


@router.put(
    "/courses/{course}/lms/inbound-secret",
    operation_id="lms-set-inbound-secret",
    response_model=InboundSecretView,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
async def set_inbound_secret(
    course: str, scope: Scope, body: InboundSecretSet | None = None
) -> InboundSecretView:
    """Instructors: a new secret for the LMS to sign its events with. Without a body the service
    generates one (`whsec_...`) and answers with it this once; or give the LMS's own in `secret`.
    The secrets it replaces keep verifying for AUTOGRADE_LMS_INBOUND_SECRET_GRACE_SECONDS."""
    return await scope.run(
        lambda session, principal: service.set_inbound_secret(
            session, scope.settings, principal, course, body
        )
    )


@router.put(
    "/courses/{course}/lms/users/{external_id}",
    operation_id="lms-set-user-mapping",
    response_model=UserMappingView,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
async def set_user_mapping(
    course: str, external_id: ExternalId, body: UserMappingSet, scope: Scope
) -> UserMappingView:
    """Staff: map the LMS's id of a user to a member of the course (events name users by it)."""
    return await scope.run(
        lambda session, principal: service.set_user_mapping(session, principal, course, external_id, body)
    )


@router.put(
    "/courses/{course}/lms/assignments/{external_id}",
    operation_id="lms-set-assignment-mapping",
    response_model=AssignmentMappingView,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
async def set_assignment_mapping(
    course: str, external_id: ExternalId, body: AssignmentMappingSet, scope: Scope
) -> AssignmentMappingView:
    """Staff: map the LMS's id of an assignment to one of the course's assignments."""
    return await scope.run(
        lambda session, principal: service.set_assignment_mapping(
            session, principal, course, external_id, body
        )
    )


@router.post(
    "/lms/events",
    operation_id="lms-receive-event",
    response_model=LmsEventResult,
    responses=error_responses(401, 403, 404, 409, 413, 422, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": request_body_schema(LmsEvent)}},
        }
    },
)
async def receive_event(
    request: Request,
    webhook_id: WebhookIdHeader = None,
    webhook_timestamp: TimestampHeader = None,
    webhook_signature: SignatureHeader = None,
) -> LmsEventResult:
    """An event from the LMS, signed per Standard Webhooks with an inbound secret of the course in
    `data.course` (no bearer token). `submission.created` submits as the mapped student exactly as
    POST .../submissions does (and may be refused the same ways); `enrollment.created` and
    `enrollment.deleted` enroll and unenroll. A webhook-id already acted on answers
    `{"status": "duplicate"}` and does nothing. A refused event changes nothing."""
    headers = service.SignatureHeaders(webhook_id, webhook_timestamp, webhook_signature)
    body = await request.body()
    scope = RequestScope(request, None)
    try:
        received = await scope.run_anonymous(
            lambda session: service.receive_event(session, scope.settings, body, headers)
        )
    except AppError as error:
        # The body holds students' answers and the headers a signature: neither is logged.
        logger.warning(
            "lms event refused: %d %s (webhook-id %s): %s",
            error.status_code,
            error.code,
            webhook_id,
            error.message,
        )
        raise
    logger.info(
        "lms event %s: %s course=%s webhook-id=%s",
        received.result.status,
        received.result.type,
        received.course,
        webhook_id,
    )
    return received.result
