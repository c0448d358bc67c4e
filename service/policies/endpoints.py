from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from service.api import Scope, error_responses
from service.assignments.policy import Policy
from service.policies import service
from service.policies.schemas import ExtensionList, ExtensionSet, ExtensionView, PolicyView

router = APIRouter(prefix="/api/v1/courses/{course}/assignments/{assignment}", tags=["policies"])

Username = Annotated[str, Path(max_length=150)]


@router.get(
    "/policy", operation_id="policies-get", response_model=PolicyView, responses=error_responses(401, 404)
)
async def get_policy(course: str, assignment: str, scope: Scope) -> PolicyView:
    """The policy in force (the course's, else the material's): open and due times, the late rule,
    attempt limits, which answer counts, whether grades are held. Every member of the course may
    read it; a student also sees their own extended due time."""
    return await scope.run(
        lambda session, principal: service.policy_view(session, principal, course, assignment)
    )


@router.put(
    "/policy",
    operation_id="policies-set",
    response_model=PolicyView,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
async def set_policy(course: str, assignment: str, policy: Policy, scope: Scope) -> PolicyView:
    """Staff: replace the assignment's policy as a whole (the material's no longer applies). Times
    without an offset are read in `timezone`. Every submission's lateness is measured again."""
    return await scope.run(
        lambda session, principal: service.set_policy(session, principal, course, assignment, policy)
    )


@router.delete(
    "/policy",
    operation_id="policies-delete",
    response_model=PolicyView,
    responses=error_responses(401, 403, 404),
)
async def delete_policy(course: str, assignment: str, scope: Scope) -> PolicyView:
    """Staff: drop the course's policy; the material's applies again (lateness measured again)."""
    return await scope.run(
        lambda session, principal: service.reset_policy(session, principal, course, assignment)
    )


@router.get(
    "/extensions",
    operation_id="policies-list-extensions",
    response_model=ExtensionList,
    responses=error_responses(401, 403, 404),
)
async def list_extensions(course: str, assignment: str, scope: Scope) -> ExtensionList:
    """Staff: the students with their own due time on this assignment."""
    return await scope.run(
        lambda session, principal: service.list_extensions(session, principal, course, assignment)
    )


@router.put(
    "/extensions/{username}",
    operation_id="policies-set-extension",
    response_model=ExtensionView,
    responses=error_responses(400, 401, 403, 404, 413, 422),
)
async def set_extension(
    course: str, assignment: str, username: Username, body: ExtensionSet, scope: Scope
) -> ExtensionView:
    """Staff: give a student their own due time (the late rule and its cutoff count from it; the
    opening time stays). Their submissions' lateness is measured again."""
    return await scope.run(
        lambda session, principal: service.set_extension(
            session, principal, course, assignment, username, body
        )
    )


@router.delete(
    "/extensions/{username}",
    operation_id="policies-delete-extension",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403, 404),
)
async def delete_extension(course: str, assignment: str, username: Username, scope: Scope) -> Response:
    """Staff: take a student's extension back; the assignment's due time applies to them again."""
    await scope.run(
        lambda session, principal: service.delete_extension(session, principal, course, assignment, username)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/release",
    operation_id="policies-release-grades",
    response_model=PolicyView,
    responses=error_responses(401, 403, 404),
)
async def release_grades(course: str, assignment: str, scope: Scope) -> PolicyView:
    """Staff: show students their grades of an assignment whose policy holds them (`hold_grades`).
    Releasing again keeps the first release's time."""
    return await scope.run(
        lambda session, principal: service.set_release(session, principal, course, assignment, released=True)
    )


@router.delete(
    "/release",
    operation_id="policies-withhold-grades",
    response_model=PolicyView,
    responses=error_responses(401, 403, 404),
)
async def withhold_grades(course: str, assignment: str, scope: Scope) -> PolicyView:
    """Staff: withdraw a release; students stop seeing the held grades."""
    return await scope.run(
        lambda session, principal: service.set_release(session, principal, course, assignment, released=False)
    )
