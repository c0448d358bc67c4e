"""The policy page: the policy in force, a form to replace it, students' extensions, and releasing
or withholding held grades. Every change is a plain POST form (CSRF field) answered by a redirect;
a refused change shows the page again with the service's message."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.assignments.policy import Policy
from service.auth.service import Principal
from service.dashboard.pages import DASHBOARD_PATH, DashboardScope, Page, render
from service.errors import AppError, UnprocessableAnswer
from service.policies import service as policies
from service.policies.schemas import ExtensionList, ExtensionSet, PolicyView

router = APIRouter(prefix=DASHBOARD_PATH, tags=["dashboard"], include_in_schema=False)

Slug = Annotated[str, Path(max_length=64)]
Username = Annotated[str, Path(max_length=150)]
PAGE = "/courses/{course}/assignments/{assignment}/policy"
# The notes a redirect may ask the page to show: fixed texts, so a link cannot make the page say
# anything else.
NOTES = {
    "policy": "The policy is saved; every submission's lateness was measured again.",
    "reset": "The course's policy is dropped; the material's applies again.",
    "extension": "The extension is saved.",
    "removed": "The extension is removed.",
    "released": "Grades are released to students.",
    "withheld": "Grades are withheld from students.",
}
# What one text field of the form may hold; longer is a hostile or broken form.
MAX_FIELD = 2_000


def _page_url(course: str, assignment: str) -> str:
    return f"{DASHBOARD_PATH}/courses/{course}/assignments/{assignment}/policy"


def _local(moment: datetime | None, zone: str) -> str:
    """An instant as a datetime-local input shows it: wall-clock time in the policy's zone."""
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M")


async def _show(
    scope: DashboardScope,
    course: str,
    assignment: str,
    *,
    note: str | None = None,
    problem: AppError | None = None,
) -> Response:
    def read(session: Session, principal: Principal) -> tuple[str, PolicyView, ExtensionList]:
        view = policies.policy_view(session, principal, course, assignment)
        extensions = policies.list_extensions(session, principal, course, assignment)
        return principal.username, view, extensions

    user, view, extensions = await scope.run(read)
    policy = view.policy
    return render(
        scope,
        "policy.html",
        {
            "title": f"Policy of {assignment}",
            "user": user,
            "course": course,
            "assignment": assignment,
            "view": view,
            "policy": policy,
            "opens_local": _local(policy.opens_at, policy.timezone),
            "due_local": _local(policy.due_at, policy.timezone),
            "extensions": extensions.items,
            "note": note,
            "problem": problem,
        },
        status_code=200 if problem is None else problem.status_code,
    )


@router.get(PAGE)
async def policy_page(course: Slug, assignment: Slug, scope: Page, done: str | None = None) -> Response:
    return await _show(scope, course, assignment, note=NOTES.get(done or ""))


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        raise UnprocessableAnswer(f"The field {name!r} is not one this page sends.")
    return value.strip()


def _policy_from(form: dict[str, Any], current: Policy) -> Policy:
    """The form as a Policy; per-question attempt limits, which the form does not show, are kept."""
    penalty = _text(form, "late_penalty_percent")
    late = (
        None
        if penalty == ""
        else {
            "penalty_percent": penalty,
            "period_hours": _text(form, "late_period_hours") or 24,
            "cutoff_hours": _text(form, "late_cutoff_hours") or None,
        }
    )
    fields = {
        "timezone": _text(form, "timezone") or "UTC",
        "opens_at": _text(form, "opens_at") or None,
        "due_at": _text(form, "due_at") or None,
        "late": late,
        "max_attempts": _text(form, "max_attempts") or None,
        "question_attempts": current.question_attempts,
        "max_submissions": _text(form, "max_submissions") or None,
        "counts": _text(form, "counts") or "last",
        "hold_grades": form.get("hold_grades") == "on",
    }
    try:
        return Policy.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the policy"
        raise UnprocessableAnswer(f"The policy cannot be accepted: {where}: {first['msg']}.") from None


async def _change(scope: DashboardScope, course: str, assignment: str, done: str, work: Any) -> Response:
    """Run a change for the signed-in user, then show the page again: with a note, or with the
    service's message if it refused."""
    try:
        await scope.run(work)
    except AppError as error:
        return await _show(scope, course, assignment, problem=error)
    return RedirectResponse(f"{_page_url(course, assignment)}?done={done}", status_code=303)


@router.post(PAGE)
async def save_policy(course: Slug, assignment: Slug, scope: Page) -> Response:
    form = await scope.check_csrf()

    def save(session: Session, principal: Principal) -> None:
        current = policies.policy_view(session, principal, course, assignment).policy
        policies.set_policy(session, principal, course, assignment, _policy_from(form, current))

    return await _change(scope, course, assignment, "policy", save)


@router.post(PAGE + "/reset")
async def reset_policy(course: Slug, assignment: Slug, scope: Page) -> Response:
    await scope.check_csrf()
    return await _change(
        scope,
        course,
        assignment,
        "reset",
        lambda session, principal: policies.reset_policy(session, principal, course, assignment),
    )


@router.post(PAGE + "/extensions")
async def save_extension(course: Slug, assignment: Slug, scope: Page) -> Response:
    form = await scope.check_csrf()

    def save(session: Session, principal: Principal) -> None:
        username = _text(form, "username")
        if not username or len(username) > 150:
            raise UnprocessableAnswer("Name the student by their username.")
        try:
            body = ExtensionSet(due_at=_text(form, "due_at"), reason=_text(form, "reason"))
        except ValidationError as error:
            raise UnprocessableAnswer(
                f"The extension cannot be accepted: {error.errors()[0]['msg']}."
            ) from None
        policies.set_extension(session, principal, course, assignment, username, body)

    return await _change(scope, course, assignment, "extension", save)


@router.post(PAGE + "/extensions/{username}/delete")
async def remove_extension(course: Slug, assignment: Slug, username: Username, scope: Page) -> Response:
    await scope.check_csrf()
    return await _change(
        scope,
        course,
        assignment,
        "removed",
        lambda session, principal: policies.delete_extension(
            session, principal, course, assignment, username
        ),
    )


@router.post(PAGE + "/release")
async def release(course: Slug, assignment: Slug, scope: Page) -> Response:
    await scope.check_csrf()
    return await _change(
        scope,
        course,
        assignment,
        "released",
        lambda session, principal: policies.set_release(
            session, principal, course, assignment, released=True
        ),
    )


@router.post(PAGE + "/withhold")
async def withhold(course: Slug, assignment: Slug, scope: Page) -> Response:
    await scope.check_csrf()
    return await _change(
        scope,
        course,
        assignment,
        "withheld",
        lambda session, principal: policies.set_release(
            session, principal, course, assignment, released=False
        ),
    )
