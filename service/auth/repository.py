from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, aliased

from service.db import read_on_connection
from service.models import ApiToken, Enrollment, Role, User

_USER_BY_TOKEN_HASH = (
    select(User.id, User.username)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)


def find_user_by_token_hash(session: Session, token_hash: str) -> tuple[int, str] | None:
    """(user id, username) of a live token; plain columns, and a statement built once, as this runs
    on every request."""
    row = read_on_connection(session, _USER_BY_TOKEN_HASH, {"token_hash": token_hash}).one_or_none()
    return None if row is None else (row[0], row[1])


def token_exists(session: Session, token_hash: str) -> bool:
    return session.scalar(select(ApiToken.id).where(ApiToken.token_hash == token_hash)) is not None


def add_token(session: Session, user_id: int, token_hash: str, label: str) -> ApiToken:
    token = ApiToken(user_id=user_id, token_hash=token_hash, label=label)
    session.add(token)
    session.flush()
    return token


def find_user_id(session: Session, username: str) -> int | None:
    return session.scalar(select(User.id).where(User.username == username))


def shared_course_roles(session: Session, user_id: int, other_user_id: int) -> list[tuple[Role, Role]]:
    """(user's role, other user's role) in every course both are enrolled in."""
    mine, theirs = aliased(Enrollment), aliased(Enrollment)
    rows = session.execute(
        select(mine.role, theirs.role)
        .join(theirs, theirs.course_id == mine.course_id)
        .where(mine.user_id == user_id, theirs.user_id == other_user_id)
    ).all()
    return [(Role(role), Role(other_role)) for role, other_role in rows]


def revoke_live_tokens(session: Session, user_id: int, at: datetime) -> int:
    """Mark every live token of the user revoked; returns how many were live."""
    result = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
