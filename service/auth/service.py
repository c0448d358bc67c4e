from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.auth import repository
from service.errors import Forbidden, NotFound, Unauthenticated
from service.models import Role, utcnow

TOKEN_PREFIX = "ag_"  # noqa: S105  (a prefix, not a secret)
MAX_TOKEN_LENGTH = 256
# Whose tokens a member of a course may revoke: an instructor a TA's or a student's, a TA a student's.
REVOCABLE_BY: dict[Role, frozenset[Role]] = {
    Role.INSTRUCTOR: frozenset({Role.TA, Role.STUDENT}),
    Role.TA: frozenset({Role.STUDENT}),
    Role.STUDENT: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def authenticate(session: Session, token: str | None) -> Principal:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("A valid bearer token is required.")
    user = repository.find_user_by_token_hash(session, hash_token(token))
    if user is None:
        raise Unauthenticated("A valid bearer token is required.")
    return Principal(user_id=user[0], username=user[1])


def issue_token(session: Session, user_id: int, label: str, token: str | None = None) -> str:
    """Store a token for a user and return it in clear (the only time it is visible).

    A given token (the demo's fixed ones) is stored only if it is not stored already.
    """
    token = token or new_token()
    token_hash = hash_token(token)
    if not repository.token_exists(session, token_hash):
        repository.add_token(session, user_id, token_hash, label)
    return token


def revoke_tokens(session: Session, username: str) -> int:
    """The operator's revocation (`autograde tokens revoke`): every live token of the user."""
    user_id = repository.find_user_id(session, username)
    if user_id is None:
        raise NotFound(f"No user {username!r}.")
    return repository.revoke_live_tokens(session, user_id, utcnow())


def revoke_tokens_as(session: Session, principal: Principal, username: str) -> int:
    """A user revokes their own tokens, or staff those of a member of a course they teach.

    Tokens belong to the user, not to a course: revoking them ends the user's access everywhere.
    """
    user_id = repository.find_user_id(session, username)
    # A user the caller shares no course with does not exist for them, like any other course's things.
    unknown = NotFound(f"No user {username!r} in your courses.")
    if user_id is None:
        raise unknown
    if user_id != principal.user_id:
        roles = repository.shared_course_roles(session, principal.user_id, user_id)
        if not roles:
            raise unknown
        if not any(theirs in REVOCABLE_BY[mine] for mine, theirs in roles):
            raise Forbidden("Instructors may revoke a TA's or a student's tokens, TAs a student's.")
    return repository.revoke_live_tokens(session, user_id, utcnow())
