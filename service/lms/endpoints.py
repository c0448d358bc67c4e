"""Outbound webhook subscriptions and their delivery log, for the course's staff."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from service.api import Scope, error_responses
from service.lms import service
from service.lms.schemas import DeliveryList, DeliveryView, WebhookCreate, WebhookCreated, WebhookList

router = APIRouter(prefix="/api/v1/courses/{course}/webhooks", tags=["webhooks"])

# Ids are 32-bit integer columns on PostgreSQL: a larger one is a 422, not a 500.
MAX_ID = 2**31 - 1


@router.post(
    "",
    operation_id="webhooks-create",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
async def create_webhook(course: str, body: WebhookCreate, scope: Scope) -> WebhookCreated:
    """Staff: subscribe a URL to the course's events (`submission.graded`, `grade.changed`). The
    answer carries the signing secret (`whsec_...`) once: store it; it is never shown again."""
    return await scope.run(
        lambda session, principal: service.create_subscription(
            session, scope.settings, principal, course, body
        )
    )


@router.get(
    "", operation_id="webhooks-list", response_model=WebhookList, responses=error_responses(401, 403, 404)
)
async def list_webhooks(course: str, scope: Scope) -> WebhookList:
    """Staff: the course's subscriptions, deleted ones included (without secrets)."""
    return await scope.run(lambda session, principal: service.list_subscriptions(session, principal, course))


@router.delete(
    "/{webhook_id}",
    operation_id="webhooks-delete",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404, 422),
)
async def delete_webhook(course: str, webhook_id: uuid.UUID, scope: Scope) -> Response:
    """Staff: stop the subscription (nothing more is sent, pending deliveries included); its
    delivery log stays readable."""
    await scope.run(
        lambda session, principal: service.disable_subscription(session, principal, course, webhook_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{webhook_id}/deliveries",
    operation_id="webhooks-list-deliveries",
    response_model=DeliveryList,
    responses=error_responses(401, 403, 404, 422),
)
async def list_deliveries(
    course: str,
    webhook_id: uuid.UUID,
    scope: Scope,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="`next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryList:
    """Staff: the subscription's deliveries, newest first: status (pending, delivered, dead),
    attempts, the last status code and error, and when the next attempt is due."""
    return await scope.run(
        lambda session, principal: service.list_deliveries(
            session, principal, course, webhook_id, before, limit
        )
    )


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    operation_id="webhooks-redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryView,
    responses=error_responses(401, 403, 404, 422),
)
async def redeliver(
    course: str,
    webhook_id: uuid.UUID,
    delivery_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    scope: Scope,
) -> DeliveryView:
    """Staff: send the delivery again, with the same `webhook-id`, on a fresh retry schedule (a
    dead one, or one the receiver lost). The workers send it; this only queues it."""
    return await scope.run(
        lambda session, principal: service.redeliver(session, principal, course, webhook_id, delivery_id)
    )
