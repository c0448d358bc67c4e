from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.models.base import Base, JSONDocument, UTCDateTime, string_enum, utcnow
from service.models.queue import Queue


class Assignment(Base):
    __tablename__ = "assignments"
    # The same material (hw5) may be loaded into several courses, or next semester's course.
    __table_args__ = (UniqueConstraint("course_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    # The public id in URLs, within its course (/api/v1/courses/{course}/assignments/{slug}).
    slug: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AssignmentVersion(Base):
    """An immutable snapshot of the material; re-loading changed material adds a version."""

    __tablename__ = "assignment_versions"
    __table_args__ = (UniqueConstraint("assignment_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    # SHA-256 over the question definitions and the reference source.
    content_hash: Mapped[str] = mapped_column(String(64))
    # The instructor's reference module, kept with the version so any worker can grade any version.
    reference_source: Mapped[str] = mapped_column(Text, default="")
    # The material's `[policy]` (service.policies.rules.Policy as JSON); {}: no deadline, no limits.
    policy: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    questions: Mapped[list[Question]] = relationship(
        order_by="Question.position", lazy="selectin", cascade="all, delete-orphan"
    )


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (UniqueConstraint("assignment_version_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_version_id: Mapped[int] = mapped_column(
        ForeignKey("assignment_versions.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    points: Mapped[float] = mapped_column(Float)
    prompt: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # Which worker queue grades it.
    resource_class: Mapped[Queue] = mapped_column(
        string_enum(Queue, "resource_class", length=8), default=Queue.CPU
    )
