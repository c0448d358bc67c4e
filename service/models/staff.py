"""What teaching staff add to grading: policies and extensions per assignment, TAs' grades and
overrides, the append-only audit log of every grade a person changed, and regrades."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, JSONDocument, UTCDateTime, string_enum, utcnow


class AssignmentPolicy(Base):
    """The course's own policy for an assignment, set through the API; it replaces the policy of the
    material (`[policy]` in assignment.toml) as a whole. Also when the staff released the grades."""

    __tablename__ = "assignment_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    # A service.policies.rules.Policy as JSON; None: the material's policy applies.
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    # Set when the staff release grades held back by the policy's `hold_grades`.
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Extension(Base):
    """A new due time for one student on one assignment; the late rule counts from it."""

    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("assignment_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text, default="")
    granted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ManualGradeKind(StrEnum):
    # A TA's score for an answer the graders leave to people (pending_manual).
    MANUAL = "manual"
    # A person's score replacing an automatic one; it needs a reason.
    OVERRIDE = "override"


class ManualGrade(Base):
    """The current grade a person gave one answer (one question of one submission). It wins over
    the automatic result and survives regrades; every change is also appended to grade_audit.
    `version` is the optimistic-concurrency token: a write naming an older version is a 409."""

    __tablename__ = "manual_grades"
    __table_args__ = (UniqueConstraint("submission_id", "question_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    question_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[ManualGradeKind] = mapped_column(string_enum(ManualGradeKind, "manual_grade_kind"))
    score: Mapped[float] = mapped_column(Float)
    feedback: Mapped[str] = mapped_column(Text, default="")
    # The rubric items as applied: [{"item": i, "description", "points", "applied", "comment"}].
    rubric: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    graded_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    graded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GradeAuditEntry(Base):
    """One change a person (or a regrade they started) made to a grade. Append-only: the
    migration installs triggers that refuse UPDATE and DELETE on this table."""

    __tablename__ = "grade_audit"
    __table_args__ = (
        Index("ix_grade_audit_course_time", "course_id", "id"),
        Index("ix_grade_audit_submission", "submission_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No ON DELETE CASCADE: the log outlives nothing it names, and the triggers forbid deletes.
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    submission_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("submissions.id"))
    question_key: Mapped[str] = mapped_column(String(64))
    actor_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # manual_grade, override, cleared, ... (service.manual_grades says which).
    action: Mapped[str] = mapped_column(String(32))
    old_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    new_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Regrade(Base):
    """A TA's request to grade an assignment's submissions again (all questions or one, all
    students or some) against the assignment's current version. Its jobs are grading_jobs rows with
    regrade_id set; the results they write are new revisions, the old ones stay."""

    __tablename__ = "regrades"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    # The version the submissions are graded against: the newest when the regrade started.
    assignment_version_id: Mapped[int] = mapped_column(ForeignKey("assignment_versions.id"))
    # None: every question.
    question_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Usernames; None: every student with a submission.
    students: Mapped[list[str] | None] = mapped_column(JSONDocument, nullable=True)
    # False: TAs' grades and overrides of the regraded questions are cleared (and audited).
    keep_manual: Mapped[bool] = mapped_column(Boolean, default=True)
    requested_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    total_jobs: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
