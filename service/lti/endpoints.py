"""LTI 1.3 routes: the course's platform registration (instructors), the tool's JWKS, the OIDC
login and the launch (the LMS and the browser, no bearer token), and the student's page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Cookie, Form, Query, Request
from fastapi import Path as PathParameter
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.api import Scope, error_responses
from service.assignments.service import assignment_view
from service.config import Settings
from service.db import transaction
from service.errors import Forbidden
from service.lms import score_log
from service.lms.endpoints import MAX_ID
from service.lms.schemas import ScoreDeliveryList, ScoreDeliveryView
from service.lti import deep_linking
from service.lti import service as service
from service.lti.platform_keys import PlatformKeys
from service.lti.schemas import Jwks, PlatformRegistration, PlatformView
from service.models import Role
from service.submissions.service import list_submissions

router = APIRouter(tags=["lti"])
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STUDENT_COOKIE = "autograde_lti"
# The dashboard's cookie (service/dashboard/pages.py): a staff launch signs the dashboard in.
DASHBOARD_COOKIE = "autograde_dashboard"
DASHBOARD_PATH = "/dashboard"
MAX_HINT = 2000
MAX_ID_TOKEN = 65_536
MAX_STATE = 128
STUDENT_PAGE_SUBMISSIONS = 50
LAUNCH_PAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The student's page, or the way to the dashboard"}
}
RETURN_PAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The form that returns the choice to the LMS"}
}

Result = TypeVar("Result")
Text = Annotated[str, Query(min_length=1, max_length=MAX_HINT)]
OptionalText = Annotated[str | None, Query(min_length=1, max_length=MAX_HINT)]
FormText = Annotated[str, Form(min_length=1, max_length=MAX_HINT)]
OptionalFormText = Annotated[str | None, Form(min_length=1, max_length=MAX_HINT)]


async def _in_transaction(request: Request, work: Callable[[Session], Result]) -> Result:
    """One unit of work that may write, whatever the method: a login by GET stores its nonce."""

    def run() -> Result:
        with transaction(request.app.state.session_factory) as session:
            return work(session)

    return await run_in_threadpool(run)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.put(
    "/api/v1/courses/{course}/lti/platform",
    operation_id="lti-set-platform",
    response_model=PlatformView,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
async def set_platform(
    course: Annotated[str, PathParameter(min_length=1, max_length=64)],
    body: PlatformRegistration,
    scope: Scope,
) -> PlatformView:
    """Register the LMS (an LTI 1.3 platform) the course is launched from, or change it; instructors
    only. The answer carries the tool's login, launch and JWKS URLs to enter into the LMS."""
    return await scope.run(
        lambda session, principal: service.set_platform(session, scope.settings, principal, course, body)
    )


@router.get(
    "/api/v1/courses/{course}/lti/score-deliveries",
    operation_id="lti-list-score-deliveries",
    response_model=ScoreDeliveryList,
    responses=error_responses(401, 403, 404, 422),
)
async def list_score_deliveries(
    course: Annotated[str, PathParameter(min_length=1, max_length=64)],
    scope: Scope,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="`next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ScoreDeliveryList:
    """Staff (TAs and instructors): the scores sent to the LMS gradebook (Assignment and Grade
    Services), newest first: the student and their LMS id, the score, status (pending, delivered,
    dead), attempts, the platform's last status code and error, and when the next attempt is due."""
    return await scope.run(
        lambda session, principal: score_log.list_score_deliveries(session, principal, course, before, limit)
    )


@router.post(
    "/api/v1/courses/{course}/lti/score-deliveries/{delivery_id}/redeliver",
    operation_id="lti-redeliver-score-delivery",
    status_code=202,
    response_model=ScoreDeliveryView,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def redeliver_score_delivery(
    course: Annotated[str, PathParameter(min_length=1, max_length=64)],
    delivery_id: Annotated[int, PathParameter(ge=1, le=MAX_ID)],
    scope: Scope,
) -> ScoreDeliveryView:
    """Staff: send the score to the LMS again, on a fresh retry schedule (a dead one, or one the
    LMS lost); the workers send it, this only queues it. Only the student's latest score on the
    line item (an older one would overwrite a newer grade: 409), and not while the assignment's
    grades are held (409)."""
    return await scope.run(
        lambda session, principal: score_log.redeliver_score(session, principal, course, delivery_id)
    )


@router.get(service.JWKS_PATH, operation_id="lti-get-jwks", response_model=Jwks)
async def get_jwks(request: Request) -> Jwks:
    """The tool's public keys: the LMS checks the tool's signed messages with them."""
    settings = _settings(request)
    return await _in_transaction(request, lambda session: service.tool_jwks(session, settings))


async def _login(request: Request, login: service.LoginRequest) -> Response:
    settings = _settings(request)
    url = await _in_transaction(request, lambda session: service.start_login(session, settings, login))
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@router.get(
    service.LOGIN_PATH,
    operation_id="lti-login",
    response_class=RedirectResponse,
    status_code=302,
    responses=error_responses(403, 404, 422),
)
async def login(
    request: Request,
    iss: Text,
    login_hint: Text,
    target_link_uri: Text,
    lti_message_hint: OptionalText = None,
    client_id: OptionalText = None,
    lti_deployment_id: OptionalText = None,
) -> Response:
    """OIDC third-party login initiated by the LMS: redirects to the platform's authorization URL
    with a fresh state and nonce."""
    return await _login(
        request,
        service.LoginRequest(
            iss, login_hint, target_link_uri, lti_message_hint, client_id, lti_deployment_id
        ),
    )


@router.post(
    service.LOGIN_PATH,
    operation_id="lti-login-form",
    response_class=RedirectResponse,
    status_code=302,
    responses=error_responses(403, 404, 422),
)
async def login_form(
    request: Request,
    iss: FormText,
    login_hint: FormText,
    target_link_uri: FormText,
    lti_message_hint: OptionalFormText = None,
    client_id: OptionalFormText = None,
    lti_deployment_id: OptionalFormText = None,
) -> Response:
    """The same login, posted as a form (platforms may use either)."""
    return await _login(
        request,
        service.LoginRequest(
            iss, login_hint, target_link_uri, lti_message_hint, client_id, lti_deployment_id
        ),
    )


@router.post(
    service.LAUNCH_PATH,
    operation_id="lti-launch",
    # The page is HTML; the errors keep the JSON error shape (a response_class would relabel them).
    responses=LAUNCH_PAGE | error_responses(401, 403, 404, 422),
)
async def launch(
    request: Request,
    id_token: Annotated[str, Form(min_length=1, max_length=MAX_ID_TOKEN)],
    state: Annotated[str, Form(min_length=1, max_length=MAX_STATE)],
) -> Response:
    """The platform's launch (the id_token, posted by the browser): checked, then the LMS user is
    signed in: staff on the dashboard, a student on the assignment's page."""
    settings = _settings(request)
    pending = await _in_transaction(request, lambda session: service.pending_launch(session, state))
    # The platform's JWKS is fetched outside any transaction: a slow LMS holds no connection.
    keys: PlatformKeys = request.app.state.platform_keys
    claims = await run_in_threadpool(service.verify_id_token, keys, pending, id_token)
    outcome = await _in_transaction(
        request, lambda session: service.complete_launch(session, settings, pending, state, claims)
    )
    if outcome.deep_link is not None:
        deep_link = outcome.deep_link
        picker = await _in_transaction(
            request, lambda session: deep_linking.picker(session, settings, deep_link)
        )
        return TEMPLATES.TemplateResponse(
            request,
            "lti_deep_link_picker.html",
            {"picker": picker, "action": service.DEEP_LINK_PATH},
            headers={"Cache-Control": "no-store"},
        )
    if outcome.role is Role.STUDENT:
        response = await _student_page(request, outcome.cookie_value)
        response.set_cookie(
            STUDENT_COOKIE,
            outcome.cookie_value,
            max_age=settings.dashboard_session_seconds,
            path="/lti",
            secure=True,
            httponly=True,
            samesite="lax",
        )
        return response
    target = DASHBOARD_PATH
    if outcome.assignment is not None:
        target += f"/courses/{outcome.course}/assignments/{outcome.assignment}/gradebook"
    response = TEMPLATES.TemplateResponse(
        request,
        "lti_staff.html",
        {"target": target, "username": outcome.username, "role": outcome.role.value},
        headers={"Cache-Control": "no-store"},
    )
    response.set_cookie(
        DASHBOARD_COOKIE,
        outcome.cookie_value,
        max_age=settings.dashboard_session_seconds,
        path=DASHBOARD_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get(service.STUDENT_PAGE_PATH, include_in_schema=False)
async def student_page(
    request: Request, autograde_lti: Annotated[str | None, Cookie(max_length=MAX_STATE)] = None
) -> Response:
    """The launched assignment and the student's submissions, for the launch session's cookie."""
    return await _student_page(request, autograde_lti)


async def _student_page(request: Request, cookie_value: str | None) -> Response:
    def read(session: Session) -> dict[str, object]:
        found = service.student_session(session, cookie_value)
        context: dict[str, object] = {
            "title": found.assignment or found.course,
            "username": found.principal.username,
            "course": found.course,
            "assignment": None,
            "submissions": [],
        }
        if found.assignment is not None:
            context["assignment"] = assignment_view(session, found.principal, found.course, found.assignment)
            context["submissions"] = list_submissions(
                session, found.principal, found.course, found.assignment, STUDENT_PAGE_SUBMISSIONS, 0
            ).items
        return context

    context = await _in_transaction(request, read)
    return TEMPLATES.TemplateResponse(
        request, "lti_student.html", context, headers={"Cache-Control": "no-store"}
    )


@router.post(
    service.DEEP_LINK_PATH,
    operation_id="lti-place-assignment",
    responses=RETURN_PAGE | error_responses(401, 403, 404, 422),
)
async def deep_link(
    request: Request,
    ticket: Annotated[str, Form(min_length=1, max_length=MAX_ID_TOKEN)],
    assignment: Annotated[str, Form(min_length=1, max_length=64)],
) -> Response:
    """The staff member's choice on the deep linking picker: answers the page that posts the signed
    LtiDeepLinkingResponse (its JWT field) back to the platform's deep_link_return_url."""
    origin = request.headers.get("origin")
    # The ticket already ties the form to this tool's picker; a foreign Origin is refused outright.
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise Forbidden("The request came from another site.")
    settings = _settings(request)
    answer = await _in_transaction(
        request, lambda session: deep_linking.answer(session, settings, ticket, assignment)
    )
    return TEMPLATES.TemplateResponse(
        request, "lti_deep_link_return.html", {"answer": answer}, headers={"Cache-Control": "no-store"}
    )
