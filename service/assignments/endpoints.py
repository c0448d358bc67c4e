from __future__ import annotations

from fastapi import APIRouter

from service.api import CurrentPrincipal, DbSession, SettingsDep, error_responses
from service.assignments import service
from service.assignments.schemas import AssignmentView, PreviewRequest, PreviewView, QuestionView, VariantView

router = APIRouter(prefix="/api/v1/assignments", tags=["assignments"])


@router.get("/{assignment}", response_model=AssignmentView, responses=error_responses(401, 404))
def get_assignment(assignment: str, principal: CurrentPrincipal, session: DbSession) -> AssignmentView:
    """The current version of an assignment: its questions, without keys or references."""
    access = service.resolve_access(session, principal, assignment)
    snapshot = access.snapshot
    return AssignmentView(
        slug=snapshot.assignment_slug,
        title=snapshot.title,
        version=snapshot.version,
        max_score=snapshot.max_score,
        your_role=access.role.value,
        questions=[
            QuestionView(
                id=question.key,
                kind=question.kind,
                points=question.points,
                prompt=question.prompt,
                resource_class=question.resource_class,
                config=question.grader.public_config(question.config),
            )
            for question in snapshot.questions
        ],
    )


@router.get(
    "/{assignment}/questions/{question}/variant",
    response_model=VariantView,
    responses=error_responses(401, 404, 422),
)
def get_variant(
    assignment: str, question: str, principal: CurrentPrincipal, session: DbSession, settings: SettingsDep
) -> VariantView:
    """The caller's own inputs for a question (per-student variants differ between students)."""
    access = service.resolve_access(session, principal, assignment)
    inputs = service.variant_inputs(settings, access, principal, question)
    return VariantView(assignment=assignment, question=question, inputs=inputs)


@router.post(
    "/{assignment}/questions/{question}/preview",
    response_model=PreviewView,
    responses=error_responses(400, 401, 404, 413, 422),
)
def preview_answer(
    assignment: str, question: str, body: PreviewRequest, principal: CurrentPrincipal, session: DbSession
) -> PreviewView:
    """How a formula answer would be read (its canonical text form), or where it fails to parse.
    Grades nothing and costs no attempt."""
    access = service.resolve_access(session, principal, assignment)
    preview = service.preview_answer(access, question, body.model_dump(exclude_none=True))
    return PreviewView.model_validate(preview)
