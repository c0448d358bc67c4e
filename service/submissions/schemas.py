from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graders import JSONValue, Verdict, storable_details
from service.submissions.untrusted_json import unstorable_text

SubmissionStatus = Literal["queued", "running", "graded", "error"]


class SubmissionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "answers": {
                        "q1_1": {"choices": [2, 3]},
                        "q3_1": {"value": [6, 1, 2]},
                        "q3_2": {"text": "Argmax is not differentiable ..."},
                    }
                }
            ]
        },
    )

    # Per question id, the answer in the shape its kind expects: {"choices": [...]} for choice,
    # {"value": ...} for tensor, {"text": "..."} for manual. Notebooks are uploaded as files
    # (multipart/form-data), never given here.
    answers: dict[str, dict[str, Any]] = Field(max_length=200)


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart submission: the question it answers, its name and its bytes."""

    question_key: str
    filename: str
    content: bytes


class SubmissionAccepted(BaseModel):
    id: uuid.UUID
    assignment: str
    status: SubmissionStatus
    created_at: datetime
    url: str


class QuestionResultView(BaseModel):
    verdict: Verdict
    score: float
    max_score: float
    feedback: str
    # Staff only: expected values and diagnostics.
    details: dict[str, JSONValue] | None = None

    @field_validator("details", mode="before")
    @classmethod
    def _bounded(cls, details: object) -> object:
        # Graders bound details when they are made; rows stored before that may be nested deeper
        # than validation can follow, and a staff view must still open (and an override answer).
        return storable_details(details) if isinstance(details, Mapping) else details


class SubmissionView(BaseModel):
    id: uuid.UUID
    assignment: str
    assignment_version: int
    student: str
    status: SubmissionStatus
    score: float | None
    max_score: float
    created_at: datetime
    graded_at: datetime | None
    questions: dict[str, QuestionResultView]
    # Staff only: the answers as sent and why grading failed.
    answers: dict[str, Any] | None = None
    error: str | None = None


class SubmissionSummary(BaseModel):
    id: uuid.UUID
    student: str
    status: SubmissionStatus
    score: float | None
    max_score: float
    created_at: datetime


class SubmissionList(BaseModel):
    assignment: str
    items: list[SubmissionSummary]
    limit: int
    offset: int


class ManualGrade(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: float = Field(ge=0, allow_inf_nan=False)
    feedback: str = Field(default="", max_length=20_000)

    @field_validator("feedback")
    @classmethod
    def _storable(cls, feedback: str) -> str:
        if (problem := unstorable_text(feedback)) is not None:
            raise ValueError(f"the feedback {problem}")
        return feedback
