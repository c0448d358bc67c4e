from __future__ import annotations

from fastapi import APIRouter

from service.api import Scope, error_responses
from service.assignments import service
from service.assignments.schemas import AssignmentView, PreviewRequest, PreviewView, VariantView

router = APIRouter(prefix="/api/v1/courses/{course}/assignments", tags=["assignments"])


@router.get(
    "/{assignment}",
    operation_id="assignments-get",
    response_model=AssignmentView,
    responses=error_responses(401, 404),
)
async def get_assignment(course: str, assignment: str, scope: Scope) -> AssignmentView:
    """The current version of an assignment: its questions, without keys or references."""
    return await scope.run(
        lambda session, principal: service.assignment_view(session, principal, course, assignment)
    )


@router.get(
    "/{assignment}/questions/{question}/variant",
    response_model=VariantView,
    responses=error_responses(401, 404, 422),
)
async def get_variant(course: str, assignment: str, question: str, scope: Scope) -> VariantView:
    """The caller's own inputs for a question (per-student variants differ between students)."""
    return await scope.run(
        lambda session, principal: service.variant_view(
            session, scope.settings, principal, course, assignment, question
        )
    )


@router.post(
    "/{assignment}/questions/{question}/preview",
    response_model=PreviewView,
    responses=error_responses(400, 401, 404, 413, 422, 429),
)
async def preview_answer(
    course: str, assignment: str, question: str, body: PreviewRequest, scope: Scope
) -> PreviewView:
    """How a formula answer would be read (its canonical text form, and the same as LaTeX to typeset),
    or where it fails to parse.
    Grades nothing and costs no attempt. At most 500 characters, and
    `AUTOGRADE_RATE_LIMIT_PREVIEWS` per window per user (429 with `Retry-After` beyond)."""
    raw_answer = body.model_dump(exclude_none=True)
    return await scope.run(
        lambda session, principal: service.preview_view(
            session, scope.settings, principal, course, assignment, question, raw_answer
        )
    )
