from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import ApiToken, User


def find_user_by_token_hash(session: Session, token_hash: str) -> tuple[int, str] | None:
    """(user id, username) of a live token; plain columns, as this runs on every request."""
    statement = (
        select(User.id, User.username)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
    )
    row = session.execute(statement).one_or_none()
    return None if row is None else (row[0], row[1])


def token_exists(session: Session, token_hash: str) -> bool:
    return session.scalar(select(ApiToken.id).where(ApiToken.token_hash == token_hash)) is not None


def add_token(session: Session, user_id: int, token_hash: str, label: str) -> ApiToken:
    token = ApiToken(user_id=user_id, token_hash=token_hash, label=label)
    session.add(token)
    session.flush()
    return token
