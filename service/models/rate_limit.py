from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, UTCDateTime, utcnow


class RateLimitEvent(Base):
    """One rate-limited request that stores nothing else (a formula preview), so that its limit is
    counted in the database like the submissions' limit. Rows older than the window are deleted as
    the user makes new requests."""

    __tablename__ = "rate_limit_events"
    __table_args__ = (Index("ix_rate_limit_events_user_action_time", "user_id", "action", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
