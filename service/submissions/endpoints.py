from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from service.api import Scope, error_responses
from service.submissions import service
from service.submissions.schemas import (
    ManualGrade,
    SubmissionAccepted,
    SubmissionCreate,
    SubmissionList,
    SubmissionView,
)

router = APIRouter(prefix="/api/v1", tags=["submissions"])


@router.post(
    "/assignments/{assignment}/submissions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionAccepted,
    responses=error_responses(400, 401, 404, 409, 413, 422, 429),
)
async def create_submission(
    assignment: str,
    body: SubmissionCreate,
    response: Response,
    scope: Scope,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> SubmissionAccepted:
    """Accept answers for grading. The submission is stored before the 202 is sent and graded
    off the request path; poll the URL in `Location`. A retried POST with the same
    `Idempotency-Key` returns the first submission."""
    accepted = await scope.run(
        lambda session, principal: service.accept_submission(
            session, scope.settings, principal, assignment, body, idempotency_key, scope.executor.notify
        )
    )
    response.headers["Location"] = accepted.url
    return accepted


@router.get(
    "/assignments/{assignment}/submissions",
    response_model=SubmissionList,
    responses=error_responses(401, 404),
)
async def list_submissions(
    assignment: str,
    scope: Scope,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> SubmissionList:
    """A student's own submissions; the whole course's for its TAs and instructors."""
    return await scope.run(
        lambda session, principal: service.list_submissions(session, principal, assignment, limit, offset)
    )


@router.get(
    "/submissions/{submission_id}",
    response_model=SubmissionView,
    responses=error_responses(401, 403, 404),
)
async def get_submission(submission_id: uuid.UUID, scope: Scope) -> SubmissionView:
    """Status, score and per-question verdicts with feedback."""
    return await scope.run(
        lambda session, principal: service.get_submission(session, principal, submission_id)
    )


@router.put(
    "/submissions/{submission_id}/questions/{question}/grade",
    response_model=SubmissionView,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
async def grade_manually(
    submission_id: uuid.UUID, question: str, grade: ManualGrade, scope: Scope
) -> SubmissionView:
    """Staff only: score one answer by hand (a `pending_manual` free-text answer, or an override).
    The submission's total is recomputed."""
    return await scope.run(
        lambda session, principal: service.grade_manually(session, principal, submission_id, question, grade)
    )
