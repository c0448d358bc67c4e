"""The course's LMS integrations: its webhook subscriptions with their recent deliveries and a
Redeliver button, whether an inbound secret is set, the LTI platform registration and the scores
sent to the LMS gradebook (with their Redeliver button). What the
API shows its staff, and no more: never a secret or a key."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.dashboard.pages import DASHBOARD_PATH, DashboardScope, Page, render
from service.errors import AppError
from service.lms import score_log
from service.lms import service as webhooks
from service.lms.endpoints import MAX_ID
from service.lms.schemas import DeliveryView, ScoreDeliveryView, WebhookView
from service.lms_inbound import service as inbound
from service.lms_inbound.schemas import InboundSecretStatus
from service.lti import service as lti
from service.lti.schemas import PlatformView

router = APIRouter(prefix=DASHBOARD_PATH, tags=["dashboard"], include_in_schema=False)

Slug = Annotated[str, Path(max_length=64)]
PAGE = "/courses/{course}/integrations"
# The latest deliveries shown per subscription; the API's log pages through all of them.
DELIVERIES_SHOWN = 20
NOTES = {
    "redelivered": "The delivery is queued again; a worker sends it shortly.",
    "score-redelivered": "The score is queued again; a worker sends it to the LMS shortly.",
}


def _page_url(course: str) -> str:
    return f"{DASHBOARD_PATH}/courses/{course}/integrations"


Subscriptions = list[tuple[WebhookView, list[DeliveryView]]]


async def _show(
    scope: DashboardScope, course: str, *, note: str | None = None, problem: AppError | None = None
) -> Response:
    def read(
        session: Session, principal: Principal
    ) -> tuple[str, Subscriptions, InboundSecretStatus, PlatformView | None, list[ScoreDeliveryView]]:
        subscriptions = [
            (
                item,
                webhooks.list_deliveries(session, principal, course, item.id, None, DELIVERIES_SHOWN).items,
            )
            for item in webhooks.list_subscriptions(session, principal, course).items
        ]
        secret = inbound.inbound_secret_status(session, principal, course)
        platform = lti.platform_of(session, scope.settings, principal, course)
        scores = score_log.list_score_deliveries(session, principal, course, None, DELIVERIES_SHOWN).items
        return principal.username, subscriptions, secret, platform, scores

    user, subscriptions, secret, platform, scores = await scope.run(read)
    return render(
        scope,
        "integrations.html",
        {
            "title": f"Integrations of {course}",
            "user": user,
            "course": course,
            "subscriptions": subscriptions,
            "inbound": secret,
            "platform": platform,
            "scores": scores,
            "shown": DELIVERIES_SHOWN,
            "note": note,
            "problem": problem,
        },
        status_code=200 if problem is None else problem.status_code,
    )


@router.get(PAGE)
async def integrations_page(course: Slug, scope: Page, done: str | None = None) -> Response:
    return await _show(scope, course, note=NOTES.get(done or ""))


@router.post(PAGE + "/webhooks/{webhook}/deliveries/{delivery}/redeliver")
async def redeliver(
    course: Slug,
    webhook: uuid.UUID,
    delivery: Annotated[int, Path(ge=1, le=MAX_ID)],
    scope: Page,
) -> Response:
    await scope.check_csrf()
    try:
        await scope.run(
            lambda session, principal: webhooks.redeliver(session, principal, course, webhook, delivery)
        )
    except AppError as error:
        return await _show(scope, course, problem=error)
    return RedirectResponse(f"{_page_url(course)}?done=redelivered", status_code=303)


@router.post(PAGE + "/lti/score-deliveries/{delivery}/redeliver")
async def redeliver_score(
    course: Slug,
    delivery: Annotated[int, Path(ge=1, le=MAX_ID)],
    scope: Page,
) -> Response:
    await scope.check_csrf()
    try:
        await scope.run(
            lambda session, principal: score_log.redeliver_score(session, principal, course, delivery)
        )
    except AppError as error:
        return await _show(scope, course, problem=error)
    return RedirectResponse(f"{_page_url(course)}?done=score-redelivered", status_code=303)
