from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.db import advisory_xact_lock
from service.models import RateLimitEvent


def lock_user(session: Session, lock_class: int, user_id: int) -> None:
    """Serialise one user's concurrent requests of one kind until commit (Postgres), so that two API
    processes cannot both count N-1 and both accept an Nth. SQLite's BEGIN IMMEDIATE already does."""
    advisory_xact_lock(session, lock_class, user_id)


def newest_event_times(session: Session, user_id: int, action: str, count: int) -> list[datetime]:
    statement = (
        select(RateLimitEvent.created_at)
        .where(RateLimitEvent.user_id == user_id, RateLimitEvent.action == action)
        .order_by(RateLimitEvent.created_at.desc())
        .limit(count)
    )
    return list(session.scalars(statement).all())


def add_event(session: Session, user_id: int, action: str, at: datetime) -> None:
    session.add(RateLimitEvent(user_id=user_id, action=action, created_at=at))


def forget_events_before(session: Session, user_id: int, action: str, before: datetime) -> None:
    session.execute(
        delete(RateLimitEvent).where(
            RateLimitEvent.user_id == user_id,
            RateLimitEvent.action == action,
            RateLimitEvent.created_at < before,
        )
    )
