"""The LMS integration's rows: webhook subscriptions and the outbox of events with one delivery per
subscription, the inbound secrets, the inbound webhook ids already seen, and the LMS's ids mapped
to our users and assignments. Secrets are stored encrypted (service/lms/secrets_box.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, JSONDocument, UTCDateTime, string_enum, utcnow


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    # Event types it receives: submission.graded, grade.changed.
    events: Mapped[list[str]] = mapped_column(JSONDocument)
    # The signing secret (whsec_...), encrypted; shown to its creator once.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class OutboxEvent(Base):
    """An event, written in the transaction that changed the score; its id orders the events."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_submission", "submission_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    submission_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), nullable=True
    )
    # The Standard Webhooks body: {"type", "timestamp", "data"}.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    # Every attempt of the schedule failed; staff may redeliver.
    DEAD = "dead"


class WebhookDelivery(Base):
    """One event to one subscription: claimed under a lease by a worker, retried on a growing
    schedule, then dead-lettered."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"), index=True)
    status: Mapped[DeliveryStatus] = mapped_column(
        string_enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LmsInboundSecret(Base):
    """A secret the LMS signs inbound events with; several are live during a rotation."""

    __tablename__ = "lms_inbound_secrets"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when a newer secret replaced it and its grace period ended (or at once, on request).
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LmsReceivedWebhook(Base):
    """A `webhook-id` already acted on: a replay is acknowledged and ignored."""

    __tablename__ = "lms_received_webhooks"
    __table_args__ = (UniqueConstraint("course_id", "webhook_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class LmsMappingKind(StrEnum):
    USER = "user"
    ASSIGNMENT = "assignment"


class LmsMapping(Base):
    """An LMS's id for one of our users or assignments, per course."""

    __tablename__ = "lms_mappings"
    __table_args__ = (UniqueConstraint("course_id", "kind", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    kind: Mapped[LmsMappingKind] = mapped_column(string_enum(LmsMappingKind, "lms_mapping_kind"))
    external_id: Mapped[str] = mapped_column(String(255))
    # users.id or assignments.id, by kind.
    local_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
