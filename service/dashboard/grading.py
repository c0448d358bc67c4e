"""The submission view (answers, formulas as the grader read them, results, revisions, timings, the
audit log, results.json), the override dialog, and the manual-grading screen.

A grade is saved with the version of the grade it was based on (none for an ungraded answer): if
another TA saved one meanwhile, the service answers 409 and the page shows their grade with the
TA's own input kept, instead of overwriting it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.assignments.service import resolve_access
from service.auth.service import Principal
from service.dashboard.answers import question_panels
from service.dashboard.pages import DASHBOARD_PATH, DashboardScope, Page, render
from service.errors import AppError, Conflict, NotFound, UnprocessableAnswer
from service.marking import service as marking
from service.marking.schemas import MAX_RUBRIC_ITEMS, GradeRequest, ManualQueue, RubricMark
from service.submissions import service as submissions

router = APIRouter(prefix=DASHBOARD_PATH, tags=["dashboard"], include_in_schema=False)

Cursor = Annotated[str | None, Query(max_length=64)]


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a save failed, shown above the form: the service's message, and for a 409 the grade
    that is there now (another TA's)."""

    message: str
    current: dict[str, Any] | None = None


def _problem(error: AppError) -> Problem:
    details = error.details if isinstance(error.details, dict) else {}
    current = details.get("current")
    return Problem(error.message, current if isinstance(current, dict) else None)


def _validation_problem(error: ValidationError, labels: dict[str, str]) -> Problem:
    """The first thing the request model refused, named by the form's label for it."""
    first = error.errors()[0]
    field = str(first.get("loc", ("",))[0]) if first.get("loc") else ""
    message = str(first.get("msg", "not accepted")).removeprefix("Value error, ")
    return Problem(f"{labels.get(field, field.capitalize())}: {message}" if field else message)


def _field(form: dict[str, Any], name: str) -> str:
    """A form field as text ("" when absent, or a file where text belongs)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _optional_number(form: dict[str, Any], name: str, label: str) -> float | None:
    text = _field(form, name).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise UnprocessableAnswer(f"{label} must be a number.") from None


def _optional_version(form: dict[str, Any]) -> int | None:
    text = _field(form, "version").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise UnprocessableAnswer("The form names no grade version; reload the page.")
    return int(text)


# ---- the submission view --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverrideDraft:
    """The override dialog's fields: what the TA typed, kept when saving fails."""

    question: str
    score: str = ""
    reason: str = ""
    feedback: str = ""
    version: str = ""
    problem: Problem | None = None


def _submission_context(session: Session, principal: Principal, submission_id: uuid.UUID) -> dict[str, Any]:
    # The audit log is staff-only: asking for it first refuses a student (403) before anything.
    audit = marking.submission_audit(session, principal, submission_id)
    view = submissions.get_submission(session, principal, submission_id)
    history = submissions.grading_history(session, principal, submission_id)
    return {
        "view": view,
        "history": history,
        "audit": audit.items,
        "panels": question_panels(view.answers, view.questions, history.results),
        "user": principal.username,
    }


async def _submission_page(
    scope: DashboardScope,
    submission_id: uuid.UUID,
    *,
    saved: str | None = None,
    override: OverrideDraft | None = None,
    status_code: int = 200,
) -> Response:
    context = await scope.run(
        lambda session, principal: _submission_context(session, principal, submission_id)
    )
    view = context["view"]
    if override is not None and override.question not in view.questions:
        override = None  # ?override= names a question this submission has no result for
    elif override is not None and override.problem is None:
        # Opened afresh: on the answer's score now, and based on its grade's version if it has one.
        result = view.questions[override.question]
        version = "" if result.person_grade is None else str(result.person_grade.version or "")
        override = replace(override, score=f"{result.score:g}", version=version)
    if saved is not None and saved not in view.questions:
        saved = None
    return render(
        scope,
        "submission.html",
        context
        | {
            "title": f"Submission of {view.student}",
            "saved": saved,
            "override": override,
        },
        status_code,
    )


@router.get("/submissions/{submission_id}")
async def submission_page(
    scope: Page,
    submission_id: uuid.UUID,
    override: Annotated[str | None, Query(max_length=64)] = None,
    saved: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """`?override=q` opens the override dialog of q without JavaScript."""
    draft = None
    if override is not None:
        draft = OverrideDraft(question=override)
    return await _submission_page(scope, submission_id, saved=saved, override=draft)


@router.post("/submissions/{submission_id}/override")
async def save_override(scope: Page, submission_id: uuid.UUID) -> Response:
    form = await scope.check_csrf()
    draft = OverrideDraft(
        question=_field(form, "question")[:64],
        score=_field(form, "score")[:64],
        reason=_field(form, "reason"),
        feedback=_field(form, "feedback"),
        version=_field(form, "version")[:16],
    )
    try:
        if not draft.reason.strip():
            raise UnprocessableAnswer("An override needs a reason.")
        score = _optional_number(form, "score", "Score")
        if score is None:
            raise UnprocessableAnswer("Give the score the answer should have.")
        request = GradeRequest(
            score=score, reason=draft.reason, feedback=draft.feedback, version=_optional_version(form)
        )
        await scope.run(
            lambda session, principal: marking.grade_answer(
                session, principal, submission_id, draft.question, request, None
            )
        )
    except (Conflict, UnprocessableAnswer) as error:
        return await _reshow_override(scope, submission_id, draft, _problem(error), error.status_code)
    except ValidationError as error:
        return await _reshow_override(
            scope, submission_id, draft, _validation_problem(error, {"feedback": "Feedback"}), 422
        )
    query = urlencode({"saved": draft.question})
    return RedirectResponse(f"{DASHBOARD_PATH}/submissions/{submission_id}?{query}#audit", status_code=303)


async def _reshow_override(
    scope: DashboardScope, submission_id: uuid.UUID, draft: OverrideDraft, problem: Problem, status: int
) -> Response:
    # A 409 names the grade there now: the dialog is based on its version from here on, so
    # saving again is a deliberate change of the other TA's grade, not a blind overwrite.
    current = problem.current or {}
    version = str(current["version"]) if isinstance(current.get("version"), int) else draft.version
    reopened = OverrideDraft(draft.question, draft.score, draft.reason, draft.feedback, version, problem)
    return await _submission_page(scope, submission_id, override=reopened, status_code=status)


@router.get("/submissions/{submission_id}/results.json")
async def results_json(scope: Page, submission_id: uuid.UUID) -> Response:
    """The same document as the API's results.json, as a download."""
    results = await scope.run(
        lambda session, principal: marking.results_json(session, principal, submission_id)
    )
    return JSONResponse(
        results.model_dump(mode="json"),
        headers={"Content-Disposition": f'attachment; filename="results-{submission_id}.json"'},
    )


# ---- the manual-grading screen --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GradingDraft:
    """The grading form as the TA filled it, kept when saving fails."""

    submission: str
    applied: frozenset[int]
    comment: str
    score: str


def _grading_url(course: str, assignment: str, question: str, **query: str | None) -> str:
    base = f"{DASHBOARD_PATH}/courses/{course}/assignments/{assignment}/questions/{question}/grading"
    kept = {name: value for name, value in query.items() if value}
    return f"{base}?{urlencode(kept)}" if kept else base


def _grading_context(
    session: Session, principal: Principal, course: str, assignment: str, question: str, after: str | None
) -> dict[str, Any]:
    queue: ManualQueue = marking.list_queue(
        session, principal, course, assignment, question, limit=1, after=after, include_graded=False
    )
    # Answers skipped past are still waiting: say so when the queue after them is empty.
    skipped_remain = (
        not queue.items
        and after is not None
        and bool(
            marking.list_queue(
                session, principal, course, assignment, question, limit=1, after=None, include_graded=False
            ).items
        )
    )
    snapshot = resolve_access(session, principal, course, assignment).snapshot
    asked = snapshot.question(question)
    return {
        "item": queue.items[0] if queue.items else None,
        "next_cursor": queue.next,
        "skipped_remain": skipped_remain,
        "prompt": asked.prompt if asked is not None else "",
        "user": principal.username,
    }


async def _grading_page(
    scope: DashboardScope,
    course: str,
    assignment: str,
    question: str,
    after: str | None,
    *,
    graded: str | None = None,
    draft: GradingDraft | None = None,
    problem: Problem | None = None,
    status_code: int = 200,
) -> Response:
    context = await scope.run(
        lambda session, principal: _grading_context(session, principal, course, assignment, question, after)
    )
    # The template fills the form from the draft only when it is for the answer shown; one for an
    # answer graded meanwhile is quoted in the problem's message instead.
    return render(
        scope,
        "grading.html",
        context
        | {
            "title": f"Grade {question}",
            "course": course,
            "assignment": assignment,
            "question": question,
            "after": after,
            "graded": graded,
            "draft": draft,
            "problem": problem,
            "action": _grading_url(course, assignment, question),
        },
        status_code,
    )


@router.get("/courses/{course}/assignments/{assignment}/questions/{question}/grading")
async def grading_page(
    scope: Page,
    course: str,
    assignment: str,
    question: str,
    after: Cursor = None,
    graded: Annotated[uuid.UUID | None, Query()] = None,
) -> Response:
    """The next answer to `question` waiting for a person, after the cursor `after` (Skip)."""
    return await _grading_page(
        scope, course, assignment, question, after, graded=None if graded is None else str(graded)
    )


@router.post("/courses/{course}/assignments/{assignment}/questions/{question}/grading")
async def save_grade(scope: Page, course: str, assignment: str, question: str) -> Response:
    """Save and next: the grade of the answer shown, then the next one after the same cursor (the
    graded answer leaves the queue)."""
    form = await scope.check_csrf()
    after = _field(form, "after")[:64] or None
    count_text = _field(form, "rubric_count")
    count = int(count_text) if count_text.isdigit() and len(count_text) <= 3 else 0
    draft = GradingDraft(
        submission=_field(form, "submission")[:64],
        applied=frozenset(n for n in range(1, min(count, MAX_RUBRIC_ITEMS) + 1) if form.get(f"rubric_{n}")),
        comment=_field(form, "comment"),
        score=_field(form, "score")[:64],
    )
    try:
        try:
            submission_id = uuid.UUID(draft.submission)
        except ValueError:
            raise UnprocessableAnswer("The form names no submission; reload the page.") from None
        if count > MAX_RUBRIC_ITEMS:
            raise UnprocessableAnswer(f"A rubric has at most {MAX_RUBRIC_ITEMS} items.")
        request = GradeRequest(
            score=_optional_number(form, "score", "Score"),
            feedback=draft.comment,
            rubric=[RubricMark(item=n, applied=n in draft.applied) for n in range(1, count + 1)],
            version=_optional_version(form),
        )

        def save(session: Session, principal: Principal) -> None:
            view = submissions.get_submission(session, principal, submission_id)
            if (view.course, view.assignment) != (course, assignment):
                raise NotFound("That submission is not one of this assignment's.")
            marking.grade_answer(session, principal, submission_id, question, request, None)

        await scope.run(save)
    except (Conflict, UnprocessableAnswer) as error:
        return await _grading_page(
            scope, course, assignment, question, after,
            draft=draft, problem=_problem(error), status_code=error.status_code,
        )  # fmt: skip
    except ValidationError as error:
        return await _grading_page(
            scope, course, assignment, question, after,
            draft=draft, problem=_validation_problem(error, {"feedback": "Comment"}), status_code=422,
        )  # fmt: skip
    return RedirectResponse(
        _grading_url(course, assignment, question, after=after, graded=str(submission_id)), status_code=303
    )
