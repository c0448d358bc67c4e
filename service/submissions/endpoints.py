from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from service.api import CurrentPrincipal, DbSession, ExecutorDep, SettingsDep, error_responses
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
def create_submission(
    assignment: str,
    body: SubmissionCreate,
    response: Response,
    principal: CurrentPrincipal,
    session: DbSession,
    settings: SettingsDep,
    executor: ExecutorDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> SubmissionAccepted:
    """Accept answers for grading. The submission is stored before the 202 is sent and graded
    off the request path; poll the URL in `Location`. A retried POST with the same
    `Idempotency-Key` returns the first submission."""
    submission, job = service.create_submission(
        session, settings, principal, assignment, body, idempotency_key, executor.notify
    )
    url = f"/api/v1/submissions/{submission.id}"
    response.headers["Location"] = url
    return SubmissionAccepted(
        id=submission.id,
        assignment=assignment,
        status=service.submission_status(job.status),
        created_at=submission.created_at,
        url=url,
    )


@router.get(
    "/assignments/{assignment}/submissions",
    response_model=SubmissionList,
    responses=error_responses(401, 404),
)
def list_submissions(
    assignment: str,
    principal: CurrentPrincipal,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> SubmissionList:
    """A student's own submissions; the whole course's for its TAs and instructors."""
    return service.list_submissions(session, principal, assignment, limit, offset)


@router.get(
    "/submissions/{submission_id}",
    response_model=SubmissionView,
    responses=error_responses(401, 403, 404),
)
def get_submission(
    submission_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> SubmissionView:
    """Status, score and per-question verdicts with feedback."""
    return service.get_submission(session, principal, submission_id)


@router.put(
    "/submissions/{submission_id}/questions/{question}/grade",
    response_model=SubmissionView,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
def grade_manually(
    submission_id: uuid.UUID,
    question: str,
    grade: ManualGrade,
    principal: CurrentPrincipal,
    session: DbSession,
) -> SubmissionView:
    """Staff only: score one answer by hand (a `pending_manual` free-text answer, or an override).
    The submission's total is recomputed."""
    return service.grade_manually(session, principal, submission_id, question, grade)
