from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from graders import Verdict
from service.api import Scope, error_responses
from service.grades import service
from service.grades.schemas import Gradebook, QuestionStatistics

router = APIRouter(prefix="/api/v1", tags=["grades"])

_CSV_RESPONSE = {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The gradebook"}


@router.get(
    "/courses/{course}/assignments/{assignment}/gradebook",
    operation_id="grades-get-gradebook",
    response_model=Gradebook,
    responses={200: _CSV_RESPONSE, **error_responses(401, 403, 404, 422)},
)
async def get_gradebook(
    course: str,
    assignment: str,
    scope: Scope,
    question: Annotated[str | None, Query(max_length=64, description="Only this question's cells")] = None,
    verdict: Annotated[Verdict | None, Query(description="Students whose counted answer has it")] = None,
    late: Annotated[
        bool | None, Query(description="Students with a late (or an on-time) counted answer")
    ] = None,
    needs_grading: Annotated[
        bool | None, Query(description="Students with a cell waiting for a person")
    ] = None,
    sort: Annotated[str, Query(max_length=64, description="student, total or a question id")] = "student",
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[
        str | None, Query(max_length=service.MAX_CURSOR_CHARS, description="`next` of the page before")
    ] = None,
    format: Literal["json", "csv"] = "json",
) -> Gradebook | Response:
    """Staff only: the course's students x the assignment's questions, each cell the answer that
    counts (the policy's last or best) with its effective score and parts. The verdict, late and
    needs_grading filters keep the students with a cell (of `question`, if given) matching them
    all. Keyset-paginated: pass `next` as `after`. `format=csv` gives the whole gradebook as CSV."""
    query = service.GradebookQuery(
        question, verdict, late, needs_grading, sort, order == "desc", limit, after
    )
    if format == "csv":
        text = await scope.run(
            lambda session, principal: service.gradebook_csv(session, principal, course, assignment, query)
        )
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{assignment}-gradebook.csv"'},
        )
    return await scope.run(
        lambda session, principal: service.gradebook(session, principal, course, assignment, query)
    )


@router.get(
    "/courses/{course}/assignments/{assignment}/questions/{question}/statistics",
    operation_id="grades-get-statistics",
    response_model=QuestionStatistics,
    responses=error_responses(401, 403, 404, 422),
)
async def get_statistics(
    course: str,
    assignment: str,
    question: str,
    scope: Scope,
    bins: Annotated[int, Query(ge=1, le=100, description="Histogram bins over 0..points")] = 10,
) -> QuestionStatistics:
    """Staff only: over the counted answers of the course's students to one question: mean,
    median, a score histogram, verdict counts, how many wait for a person, and the mistakes the
    graders named, grouped and counted."""
    return await scope.run(
        lambda session, principal: service.question_statistics(
            session, principal, course, assignment, question, bins
        )
    )
