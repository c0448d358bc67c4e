from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.api import Scope, error_responses
from service.auth import service
from service.auth.schemas import TokensRevoked

router = APIRouter(prefix="/api/v1", tags=["tokens"])


@router.delete(
    "/users/{username}/tokens",
    operation_id="tokens-revoke",
    response_model=TokensRevoked,
    responses=error_responses(401, 403, 404, 422),
)
async def revoke_tokens(
    username: Annotated[str, Path(min_length=1, max_length=64)], scope: Scope
) -> TokensRevoked:
    """Revoke every live token of a user: your own, or, in a course you teach, a student's (TAs and
    instructors) or a TA's (instructors). A revoked token is refused (401) from the next request on."""
    revoked = await scope.run(
        lambda session, principal: service.revoke_tokens_as(session, principal, username)
    )
    return TokensRevoked(username=username, revoked=revoked)
