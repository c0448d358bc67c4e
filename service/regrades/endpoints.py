from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from service.api import Scope, error_responses
from service.regrades import service
from service.regrades.schemas import RegradeCreate, RegradeList, RegradeView

router = APIRouter(prefix="/api/v1", tags=["regrades"])


@router.post(
    "/courses/{course}/assignments/{assignment}/regrades",
    operation_id="regrades-create",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RegradeView,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
async def create_regrade(
    course: str, assignment: str, request: RegradeCreate, response: Response, scope: Scope
) -> RegradeView:
    """Staff only: grade the assignment's submissions again against its newest version (all
    questions or `question`; every student or `students`), on the grading workers. The old results
    stay (a regrade writes the next revision); people's grades survive unless `keep_manual` is
    false. Poll the URL in `Location` for progress and, when done, the changed scores."""
    started = await scope.run(
        lambda session, principal: service.start_regrade(
            session, scope.settings, principal, course, assignment, request
        )
    )
    response.headers["Location"] = started.url
    return started


@router.get(
    "/courses/{course}/assignments/{assignment}/regrades",
    operation_id="regrades-list",
    response_model=RegradeList,
    responses=error_responses(401, 403, 404),
)
async def list_regrades(
    course: str,
    assignment: str,
    scope: Scope,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RegradeList:
    """Staff only: the assignment's regrades, newest first, with their progress."""
    return await scope.run(
        lambda session, principal: service.list_regrades(
            session, principal, course, assignment, limit, offset
        )
    )


@router.get(
    "/regrades/{regrade_id}",
    operation_id="regrades-get",
    response_model=RegradeView,
    responses=error_responses(401, 403, 404),
)
async def get_regrade(regrade_id: uuid.UUID, scope: Scope) -> RegradeView:
    """Staff only: progress (done / total, errors); once done, every answer whose score or verdict
    changed, old and new."""
    return await scope.run(lambda session, principal: service.get_regrade(session, principal, regrade_id))
