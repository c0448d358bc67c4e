from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from graders import Verdict
from service.models.base import Base, JSONDocument, OptionalJSONDocument, UTCDateTime, string_enum, utcnow
from service.models.queue import Queue


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_submissions_version_user", "assignment_version_id", "user_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    assignment_version_id: Mapped[int] = mapped_column(ForeignKey("assignment_versions.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The answers exactly as the student sent them, per question id.
    answers: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # SHA-256 of the canonical request, to refuse a reused Idempotency-Key with another body.
    request_hash: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_score: Mapped[float] = mapped_column(Float)
    # How late it came in against the student's due time (0: on time) and the fraction of each
    # score the late rule takes (docs/grading-policy.md); recomputed when the policy or the
    # student's extension changes.
    late_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    late_penalty: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    graded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SubmissionFile(Base):
    """A file uploaded with a submission (a notebook). The submission's `answers` hold its name,
    SHA-256 and size under the question's key; the bytes live here, committed with the submission."""

    __tablename__ = "submission_files"
    __table_args__ = (UniqueConstraint("submission_id", "question_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    question_key: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GradingJob(Base):
    """The truth about grading one submission; queues only ever carry its id."""

    __tablename__ = "grading_jobs"
    __table_args__ = (
        Index("ix_grading_jobs_claim", "status", "queue", "id"),
        # The first grading is revision 1; each regrade of the submission adds the next.
        UniqueConstraint("submission_id", "revision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Set on a regrade's jobs: which regrade, the version to grade against, and (optionally) the
    # one question to grade.
    regrade_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("regrades.id", ondelete="CASCADE"), nullable=True, index=True
    )
    assignment_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("assignment_versions.id"), nullable=True
    )
    question_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Lets one flush insert the submission before its job.
    submission: Mapped[Submission] = relationship(lazy="raise")
    status: Mapped[JobStatus] = mapped_column(string_enum(JobStatus, "job_status"), default=JobStatus.QUEUED)
    queue: Mapped[Queue] = mapped_column(string_enum(Queue, "queue", length=8), default=Queue.CPU)
    # Incremented by every claim; a result is written only under the attempt that claimed it.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class QuestionResult(Base):
    __tablename__ = "question_results"
    # One result per question per submission and revision: a duplicate write fails instead of
    # double-counting. A regrade adds the next revision; the older rows stay, not current.
    __table_args__ = (
        UniqueConstraint("submission_id", "question_key", "revision"),
        Index("ix_question_results_current", "submission_id", "is_current"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"))
    question_key: Mapped[str] = mapped_column(String(64))
    # Exactly the graders' enum: a verdict the service stores is one a grader can return.
    verdict: Mapped[Verdict] = mapped_column(string_enum(Verdict, "verdict"))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    feedback: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # What a student sees while the result's hidden checks are not released (graders.PublicView:
    # fraction, max_fraction, feedback); None: none of its checks is hidden.
    public_view: Mapped[dict[str, Any] | None] = mapped_column(OptionalJSONDocument, nullable=True)
    grader_kind: Mapped[str] = mapped_column(String(32))
    grader_version: Mapped[str] = mapped_column(String(32))
    reference_version: Mapped[str] = mapped_column(String(64))
    job_attempt: Mapped[int] = mapped_column(Integer)
    graded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    is_current: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # A person's grade lives in manual_grades (service.marking), never in this row.
