from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from service.api import Scope, error_responses
from service.marking import service
from service.marking.schemas import AuditList, GradeRequest, GradescopeResults, ManualQueue, StudentHistory
from service.submissions.schemas import SubmissionView

router = APIRouter(prefix="/api/v1", tags=["marking"])

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=40,
        description='The grade version the change is based on (the ETag of the last response), e.g. "3".',
    ),
]


@router.get(
    "/courses/{course}/assignments/{assignment}/questions/{question}/manual-queue",
    operation_id="marking-list-queue",
    response_model=ManualQueue,
    responses=error_responses(401, 403, 404, 422),
)
async def list_queue(
    course: str,
    assignment: str,
    question: str,
    scope: Scope,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="The `next` of the page before")] = None,
    include_graded: bool = False,
) -> ManualQueue:
    """Staff: the answers to a question waiting for a person (pending_manual and not graded yet),
    oldest first, with the answer text and the rubric. `after` skips to the next page;
    `include_graded` also lists those already graded, with their grade and its version."""
    return await scope.run(
        lambda session, principal: service.list_queue(
            session,
            principal,
            course,
            assignment,
            question,
            limit=limit,
            after=after,
            include_graded=include_graded,
        )
    )


@router.put(
    "/submissions/{submission_id}/questions/{question}/grade",
    operation_id="marking-grade-answer",
    response_model=SubmissionView,
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
async def grade_answer(
    submission_id: uuid.UUID,
    question: str,
    grade: GradeRequest,
    response: Response,
    scope: Scope,
    if_match: IfMatch = None,
) -> SubmissionView:
    """Staff: a person's grade for one answer, from the rubric items applied (or a score). On an
    automatically graded question it is an override and needs a `reason`. A grade is changed by
    naming its version (`version` or `If-Match`); a stale one is a 409 with the current grade in
    `details`. Audited; the submission's total follows. The `ETag` is the grade's new version."""
    graded = await scope.run(
        lambda session, principal: service.grade_answer(
            session, principal, submission_id, question, grade, if_match
        )
    )
    response.headers["ETag"] = f'"{graded.version}"'
    return graded.view


@router.delete(
    "/submissions/{submission_id}/questions/{question}/grade",
    operation_id="marking-delete-grade",
    response_model=SubmissionView,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def delete_grade(
    submission_id: uuid.UUID,
    question: str,
    scope: Scope,
    reason: Annotated[str, Query(min_length=1, max_length=2_000)],
    if_match: IfMatch = None,
) -> SubmissionView:
    """Staff: take back a person's grade (an override, or a TA's grade of a manual answer); the
    automatic result governs again. Needs a `reason`; audited."""
    deleted = await scope.run(
        lambda session, principal: service.delete_grade(
            session, principal, submission_id, question, reason, if_match
        )
    )
    return deleted.view


@router.get(
    "/submissions/{submission_id}/audit",
    operation_id="marking-list-audit",
    response_model=AuditList,
    responses=error_responses(401, 403, 404),
)
async def list_audit(submission_id: uuid.UUID, scope: Scope) -> AuditList:
    """Staff: every change a person made to this submission's grades, oldest first."""
    return await scope.run(
        lambda session, principal: service.submission_audit(session, principal, submission_id)
    )


@router.get(
    "/courses/{course}/audit",
    operation_id="marking-list-course-audit",
    response_model=AuditList,
    responses=error_responses(401, 403, 404, 422),
)
async def list_course_audit(
    course: str,
    scope: Scope,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[int | None, Query(ge=1, le=2**62, description="The `next` of the page before")] = None,
) -> AuditList:
    """Staff: the course's grade changes, newest first, a page at a time."""
    return await scope.run(
        lambda session, principal: service.course_audit(session, principal, course, limit, after)
    )


@router.get(
    "/submissions/{submission_id}/results.json",
    operation_id="marking-get-results",
    response_model=GradescopeResults,
    responses=error_responses(401, 403, 404, 409),
)
async def get_results(submission_id: uuid.UUID, scope: Scope) -> GradescopeResults:
    """The submission in Gradescope's `results.json` format (`score`, `tests[]`). Staff; and the
    student once the assignment's grades are visible to students."""
    return await scope.run(lambda session, principal: service.results_json(session, principal, submission_id))


@router.get(
    "/courses/{course}/assignments/{assignment}/students/{username}",
    operation_id="marking-get-student",
    response_model=StudentHistory,
    responses=error_responses(401, 403, 404),
)
async def get_student(
    course: str,
    assignment: str,
    username: str,
    scope: Scope,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> StudentHistory:
    """A student's submissions to the assignment, newest first, with each answer's raw and
    effective score and the grade a person gave it. Staff; or the student themself."""
    return await scope.run(
        lambda session, principal: service.student_history(
            session, principal, course, assignment, username, limit
        )
    )
