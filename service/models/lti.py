"""LTI 1.3, the tool side: a course's platform registration, the tool's own signing keys (private
halves encrypted, service/lms/secrets_box.py), the OIDC login states whose nonces are used once,
and the sessions a launch opens for a student."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, JSONDocument, UTCDateTime, string_enum, utcnow
from service.models.lms import DeliveryStatus


class LtiPlatform(Base):
    """The LMS a course is launched from. (issuer, client id) names the registration the LMS made
    for this tool; a launch finds its course through it, so it belongs to one course only."""

    __tablename__ = "lti_platforms"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), unique=True)
    issuer: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    # The deployments (installations of the tool in the LMS) whose launches are accepted.
    deployment_ids: Mapped[list[str]] = mapped_column(JSONDocument)
    auth_login_url: Mapped[str] = mapped_column(String(2000))
    token_url: Mapped[str] = mapped_column(String(2000))
    jwks_url: Mapped[str] = mapped_column(String(2000))
    updated_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LtiToolKey(Base):
    """One of the tool's RSA key pairs. The newest unretired one signs; a retired one stays in the
    published JWKS for a grace period, so platforms that cached it can still check what it signed."""

    __tablename__ = "lti_tool_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LtiNonce(Base):
    """An OIDC login this tool started: the launch must bring back its state and, inside the signed
    id_token, its nonce, once (used_at is set by the launch that consumed it)."""

    __tablename__ = "lti_nonces"

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(64))
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LtiLaunchSession(Base):
    """What a student's browser holds after a launch (the SHA-256 of a random cookie value): it
    shows that student that assignment and their submissions, nothing else, until it expires."""

    __tablename__ = "lti_launch_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    # The assignment the launch placed (its slug in the course), or none: the course as a whole.
    assignment_slug: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LtiLineItem(Base):
    """Where an assignment's scores go in the LMS (Assignment and Grade Services): the line items
    container a launch's AGS claim named, and the line item found or created there (its URL, once
    known; a launch may name it directly)."""

    __tablename__ = "lti_line_items"
    __table_args__ = (UniqueConstraint("platform_id", "assignment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    lineitems_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    lineitem_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    resource_link_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LtiScoreDelivery(Base):
    """One outbox event's score for one LMS user on one line item: claimed, retried and
    dead-lettered exactly like a webhook delivery (service/lms/delivery.py). `score_timestamp` is
    set at each attempt, later than any earlier one of the same (line item, user): platforms
    ignore a score not newer than the last they took."""

    __tablename__ = "lti_score_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "line_item_id", "lms_user_id"),
        Index("ix_lti_score_deliveries_due", "status", "next_attempt_at"),
        Index("ix_lti_score_deliveries_target", "line_item_id", "lms_user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"), index=True)
    line_item_id: Mapped[int] = mapped_column(ForeignKey("lti_line_items.id", ondelete="CASCADE"))
    # The LTI `sub` of the student (the AGS score's userId).
    lms_user_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[DeliveryStatus] = mapped_column(
        string_enum(DeliveryStatus, "lti_score_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    score_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
