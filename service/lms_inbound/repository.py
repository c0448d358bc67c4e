"""Every SQL statement of the inbound LMS integration: inbound secrets, the webhook ids acted on,
and the LMS's ids mapped to our users and assignments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.models import Assignment, LmsInboundSecret, LmsMapping, LmsMappingKind, LmsReceivedWebhook, User


def live_secrets(session: Session, course_id: int, now: datetime) -> list[LmsInboundSecret]:
    """The secrets that verify the course's events now: not retired, or retired in the future (the
    grace period of a rotation). Newest first: the LMS most likely signs with it."""
    statement = (
        select(LmsInboundSecret)
        .where(
            LmsInboundSecret.course_id == course_id,
            or_(LmsInboundSecret.retired_at.is_(None), LmsInboundSecret.retired_at > now),
        )
        .order_by(LmsInboundSecret.id.desc())
    )
    return list(session.scalars(statement))


def retire_live_secrets(session: Session, course_id: int, until: datetime, now: datetime) -> None:
    """Every live secret stops verifying at `until` (a later end is brought forward to it)."""
    session.execute(
        update(LmsInboundSecret)
        .where(
            LmsInboundSecret.course_id == course_id,
            or_(LmsInboundSecret.retired_at.is_(None), LmsInboundSecret.retired_at > until),
            or_(LmsInboundSecret.retired_at.is_(None), LmsInboundSecret.retired_at > now),
        )
        .values(retired_at=until)
        .execution_options(synchronize_session=False)
    )


def add_secret(session: Session, course_id: int, secret_encrypted: str, now: datetime) -> LmsInboundSecret:
    row = LmsInboundSecret(course_id=course_id, secret_encrypted=secret_encrypted, created_at=now)
    session.add(row)
    session.flush()
    return row


def _insert(session: Session, table: Any) -> Any:
    """INSERT with ON CONFLICT, in the dialect at hand (both spell it the same way)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def record_webhook(session: Session, course_id: int, webhook_id: str, now: datetime) -> bool:
    """Remember that this webhook-id was acted on; False when it already was. A concurrent delivery
    of the same id waits (PostgreSQL: on the unique index; SQLite: on the write lock) for the first
    one's transaction and then finds its row, so only one of them acts."""
    statement = (
        _insert(session, LmsReceivedWebhook)
        .values(course_id=course_id, webhook_id=webhook_id, received_at=now)
        .on_conflict_do_nothing(index_elements=["course_id", "webhook_id"])
        .returning(LmsReceivedWebhook.id)
    )
    # A row comes back only when this call inserted it.
    return session.execute(statement).scalar_one_or_none() is not None


def prune_received_webhooks(session: Session, received_before: datetime, limit: int) -> int:
    """Forget up to `limit` webhook ids received before the given time; how many. Rows another
    transaction is pruning are skipped (PostgreSQL), so concurrent events never wait on each other."""
    expired = (
        select(LmsReceivedWebhook.id)
        .where(LmsReceivedWebhook.received_at < received_before)
        .order_by(LmsReceivedWebhook.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.scalars(expired))
    if ids:
        session.execute(
            delete(LmsReceivedWebhook)
            .where(LmsReceivedWebhook.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def set_mapping(
    session: Session, course_id: int, kind: LmsMappingKind, external_id: str, local_id: int, now: datetime
) -> None:
    statement = _insert(session, LmsMapping).values(
        course_id=course_id, kind=kind, external_id=external_id, local_id=local_id, created_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["course_id", "kind", "external_id"], set_={"local_id": local_id}
        )
    )


def mapped_user(session: Session, course_id: int, external_id: str) -> User | None:
    statement = select(User).join(
        LmsMapping,
        (LmsMapping.local_id == User.id)
        & (LmsMapping.course_id == course_id)
        & (LmsMapping.kind == LmsMappingKind.USER)
        & (LmsMapping.external_id == external_id),
    )
    return session.scalars(statement).one_or_none()


def mapped_assignment_slug(session: Session, course_id: int, external_id: str) -> str | None:
    # The assignment must still be the course's own (a mapping names it by id).
    statement = (
        select(Assignment.slug)
        .join(
            LmsMapping,
            (LmsMapping.local_id == Assignment.id)
            & (LmsMapping.course_id == course_id)
            & (LmsMapping.kind == LmsMappingKind.ASSIGNMENT)
            & (LmsMapping.external_id == external_id),
        )
        .where(Assignment.course_id == course_id)
    )
    return session.scalars(statement).one_or_none()
