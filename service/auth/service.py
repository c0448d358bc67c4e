from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.auth import repository
from service.errors import Unauthenticated

TOKEN_PREFIX = "ag_"  # noqa: S105  (a prefix, not a secret)
MAX_TOKEN_LENGTH = 256


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
