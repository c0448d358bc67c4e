"""Every SQL statement of LTI 1.3: platform registrations, the tool's keys, login nonces, launch
sessions, and the LMS user ids mapped to our users."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service.models import (
    LmsMapping,
    LmsMappingKind,
    LtiLaunchSession,
    LtiLineItem,
    LtiNonce,
    LtiPlatform,
    LtiToolKey,
)


def platform_of_course(session: Session, course_id: int) -> LtiPlatform | None:
    return session.scalar(select(LtiPlatform).where(LtiPlatform.course_id == course_id))


def platform_by_client(session: Session, issuer: str, client_id: str) -> LtiPlatform | None:
    return session.scalar(
        select(LtiPlatform).where(LtiPlatform.issuer == issuer, LtiPlatform.client_id == client_id)
    )


def platforms_of_issuer(session: Session, issuer: str, limit: int) -> list[LtiPlatform]:
    return list(session.scalars(select(LtiPlatform).where(LtiPlatform.issuer == issuer).limit(limit)))


def get_platform(session: Session, platform_id: int) -> LtiPlatform | None:
    return session.get(LtiPlatform, platform_id)


def add(session: Session, row: LtiPlatform | LtiToolKey | LtiNonce | LtiLaunchSession | LmsMapping) -> None:
    session.add(row)
    session.flush()


def current_tool_key(session: Session) -> LtiToolKey | None:
    """The newest unretired key: the one that signs."""
    return session.scalar(
        select(LtiToolKey)
        .where(LtiToolKey.retired_at.is_(None))
        .order_by(LtiToolKey.created_at.desc(), LtiToolKey.id.desc())
        .limit(1)
    )


def published_tool_keys(session: Session, retired_after: datetime) -> list[LtiToolKey]:
    """The live keys and those retired after the given time, newest first."""
    return list(
        session.scalars(
            select(LtiToolKey)
            .where(or_(LtiToolKey.retired_at.is_(None), LtiToolKey.retired_at > retired_after))
            .order_by(LtiToolKey.created_at.desc(), LtiToolKey.id.desc())
        )
    )


def retire_live_tool_keys(session: Session, at: datetime) -> None:
    session.execute(
        update(LtiToolKey)
        .where(LtiToolKey.retired_at.is_(None))
        .values(retired_at=at)
        .execution_options(synchronize_session=False)
    )


def unused_nonce(session: Session, state: str, now: datetime) -> LtiNonce | None:
    return session.scalar(
        select(LtiNonce).where(LtiNonce.state == state, LtiNonce.used_at.is_(None), LtiNonce.expires_at > now)
    )


def use_nonce(session: Session, state: str, nonce: str, now: datetime) -> bool:
    """Mark the login's nonce used, if it still is unused and unexpired; False when another launch
    (a replay, or a race) used it first: the conditional UPDATE decides, on every backend."""
    result = session.execute(
        update(LtiNonce)
        .where(
            LtiNonce.state == state,
            LtiNonce.nonce == nonce,
            LtiNonce.used_at.is_(None),
            LtiNonce.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def mapped_local_id(session: Session, course_id: int, kind: LmsMappingKind, external_id: str) -> int | None:
    return session.scalar(
        select(LmsMapping.local_id).where(
            LmsMapping.course_id == course_id, LmsMapping.kind == kind, LmsMapping.external_id == external_id
        )
    )


def live_launch_session(session: Session, token_hash: str, now: datetime) -> LtiLaunchSession | None:
    return session.scalar(
        select(LtiLaunchSession).where(
            LtiLaunchSession.token_hash == token_hash, LtiLaunchSession.expires_at > now
        )
    )


def line_item(session: Session, platform_id: int, assignment_id: int) -> LtiLineItem | None:
    return session.scalar(
        select(LtiLineItem).where(
            LtiLineItem.platform_id == platform_id, LtiLineItem.assignment_id == assignment_id
        )
    )


def add_line_item(session: Session, row: LtiLineItem) -> None:
    session.add(row)
    session.flush()


def set_line_item_url(session: Session, line_item_id: int, url: str, now: datetime) -> None:
    session.execute(
        update(LtiLineItem)
        .where(LtiLineItem.id == line_item_id)
        .values(lineitem_url=url, updated_at=now)
        .execution_options(synchronize_session=False)
    )
