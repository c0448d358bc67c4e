"""The assignment overview (counts, submissions over time, links to every other page of the
assignment) and regrades started from it, with their progress polled by htmx and the report of
changed scores once done."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.assignments.schemas import AssignmentView
from service.assignments.service import assignment_view
from service.auth.service import Principal
from service.dashboard.pages import DASHBOARD_PATH, DashboardScope, Page, render
from service.errors import AppError, UnprocessableAnswer
from service.regrades import service as regrades
from service.regrades.schemas import MAX_STUDENTS, RegradeCreate, RegradeView
from service.submissions.schemas import AssignmentActivity, DaySubmissions
from service.submissions.service import assignment_activity

router = APIRouter(prefix=DASHBOARD_PATH, tags=["dashboard"], include_in_schema=False)

Slug = Annotated[str, Path(max_length=64)]
# Usernames are at most 64 characters; the list at most MAX_STUDENTS of them, with separators.
MAX_STUDENTS_FIELD = MAX_STUDENTS * 66
_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: str
    count: int


@dataclass(frozen=True, slots=True)
class Timeline:
    """Submissions per day as bars in an SVG of WIDTH by HEIGHT user units (the SVG scales)."""

    bars: list[Bar]
    peak: int
    first_day: str
    last_day: str
    total: int
    label: str


WIDTH, HEIGHT, AXIS = 600.0, 160.0, 20.0


def timeline(per_day: list[DaySubmissions]) -> Timeline | None:
    if not per_day:
        return None
    peak = max(day.count for day in per_day) or 1
    slot = WIDTH / len(per_day)
    usable = HEIGHT - AXIS
    # A bar fills most of its day's slot, but a few days do not make slabs across the chart.
    width = min(max(slot * 0.8, 0.5), 40.0)
    bars = [
        Bar(
            x=round(index * slot + (slot - width) / 2, 2),
            y=round(usable - day.count / peak * usable, 2),
            width=round(width, 2),
            height=round(day.count / peak * usable, 2),
            day=day.day.isoformat(),
            count=day.count,
        )
        for index, day in enumerate(per_day)
    ]
    total = sum(day.count for day in per_day)
    busiest = max(per_day, key=lambda day: day.count)
    label = (
        f"Submissions per day from {per_day[0].day} to {per_day[-1].day}: {total} in all, "
        f"at most {busiest.count} on {busiest.day}."
    )
    return Timeline(bars, peak, per_day[0].day.isoformat(), per_day[-1].day.isoformat(), total, label)


@router.get("/courses/{course}/assignments/{assignment}")
async def overview(course: Slug, assignment: Slug, scope: Page, regrade: uuid.UUID | None = None) -> Response:
    def read(
        session: Session, principal: Principal
    ) -> tuple[str, AssignmentActivity, AssignmentView, RegradeView | None]:
        activity = assignment_activity(session, principal, course, assignment)
        shown = None if regrade is None else regrades.get_regrade(session, principal, regrade)
        return principal.username, activity, assignment_view(session, principal, course, assignment), shown

    user, activity, view, shown = await scope.run(read)
    return render(
        scope,
        "overview.html",
        {
            "title": view.title,
            "user": user,
            "course": course,
            "assignment": assignment,
            "activity": activity,
            "questions": view.questions,
            "chart": timeline(activity.per_day),
            "regrade": shown,
        },
    )


def _regrade_request(form: dict[str, object]) -> RegradeCreate:
    """The regrade form as the API's request; a hostile or mistyped form is a 422, never a 500."""
    question = form.get("question")
    students_field = form.get("students")
    if not isinstance(question, str) or not isinstance(students_field, str | None):
        raise UnprocessableAnswer("The regrade form is not one this page sent.")
    students_field = students_field or ""
    if len(students_field) > MAX_STUDENTS_FIELD:
        raise UnprocessableAnswer(f"Name at most {MAX_STUDENTS} students.")
    students = [name for name in _SEPARATORS.split(students_field) if name]
    try:
        return RegradeCreate(
            question=question or None,
            students=students or None,
            # An unchecked checkbox is absent from the form.
            keep_manual=form.get("keep_manual") == "on",
        )
    except ValidationError as error:
        raise UnprocessableAnswer(f"The regrade form has a problem: {error.errors()[0]['msg']}.") from None


def _is_htmx(scope: DashboardScope) -> bool:
    return scope.request.headers.get("HX-Request") == "true"


@router.post("/courses/{course}/assignments/{assignment}/regrades")
async def start_regrade(course: Slug, assignment: Slug, scope: Page) -> Response:
    """Start a regrade; htmx gets the progress fragment, a plain form the overview showing it."""
    form = await scope.check_csrf()
    try:
        request = _regrade_request(form)
        started = await scope.run(
            lambda session, principal: regrades.start_regrade(
                session, scope.settings, principal, course, assignment, request
            )
        )
    except AppError as error:
        if not _is_htmx(scope):
            raise
        # htmx swaps only 2xx responses into the page: the message goes back as a 200 fragment.
        return render(scope, "_problem.html", {"message": error.message})
    if _is_htmx(scope):
        return render(scope, "_regrade.html", {"regrade": started})
    return RedirectResponse(_overview_url(course, assignment, started.id), status_code=303)


@router.get("/regrades/{regrade_id}")
async def regrade_progress(regrade_id: uuid.UUID, scope: Page) -> Response:
    """The regrade's progress as a fragment (polled every second while it runs), or, once done,
    the changed scores."""
    shown = await scope.run(lambda session, principal: regrades.get_regrade(session, principal, regrade_id))
    if not _is_htmx(scope):
        return RedirectResponse(_overview_url(shown.course, shown.assignment, shown.id), status_code=303)
    return render(scope, "_regrade.html", {"regrade": shown})


def _overview_url(course: str, assignment: str, regrade_id: uuid.UUID) -> str:
    return f"{DASHBOARD_PATH}/courses/{course}/assignments/{assignment}?regrade={regrade_id}#regrade"
