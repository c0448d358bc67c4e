from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graders import Verdict
from service.submissions.schemas import AppliedRubricItem, HiddenChecksView
from service.submissions.untrusted_json import unstorable_text

MAX_RUBRIC_ITEMS = 100


def _storable(text: str, what: str) -> str:
    if (problem := unstorable_text(text)) is not None:
        raise ValueError(f"the {what} {problem}")
    return text


class RubricMark(BaseModel):
    """One rubric item of the question (numbered from 1, in the question's order), applied or not."""

    model_config = ConfigDict(extra="forbid")

    item: int = Field(ge=1, le=MAX_RUBRIC_ITEMS)
    applied: bool
    comment: str = Field(default="", max_length=2_000)

    @field_validator("comment")
    @classmethod
    def _comment(cls, comment: str) -> str:
        return _storable(comment, "comment")


class GradeRequest(BaseModel):
    """A person's grade for one answer. `score` omitted: the sum of the applied rubric items.
    `version`: the grade's version this change is based on (or send `If-Match`); omitted, the
    answer must not have a grade yet."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "feedback": "Right about the gradient.",
                    "rubric": [{"item": 1, "applied": True, "comment": ""}, {"item": 2, "applied": False}],
                }
            ]
        },
    )

    score: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    feedback: str = Field(default="", max_length=20_000)
    # Required (non-blank) for an override of an automatic score.
    reason: str = Field(default="", max_length=2_000)
    rubric: list[RubricMark] = Field(default_factory=list, max_length=MAX_RUBRIC_ITEMS)
    # An INTEGER column: a larger number would fail in the database (a 500), not be a stale version.
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)

    @field_validator("feedback")
    @classmethod
    def _feedback(cls, feedback: str) -> str:
        return _storable(feedback, "feedback")

    @field_validator("reason")
    @classmethod
    def _reason(cls, reason: str) -> str:
        return _storable(reason, "reason")


class RubricItemView(BaseModel):
    item: int
    description: str
    points: float


class ManualGradeView(BaseModel):
    kind: Literal["manual", "override"]
    score: float
    feedback: str
    rubric: list[AppliedRubricItem]
    reason: str
    version: int
    graded_by: str
    graded_at: datetime


class QueueItem(BaseModel):
    submission_id: uuid.UUID
    student: str
    submitted_at: datetime
    answer: str
    max_score: float
    rubric: list[RubricItemView]
    grade: ManualGradeView | None


class ManualQueue(BaseModel):
    course: str
    assignment: str
    question: str
    items: list[QueueItem]
    # Pass as `after` for the next page; null on the last page.
    next: str | None


class AuditEntryView(BaseModel):
    id: int
    submission_id: uuid.UUID
    student: str
    question: str
    actor: str
    action: str
    old_score: float | None
    new_score: float | None
    reason: str
    details: dict[str, Any]
    created_at: datetime


class AuditList(BaseModel):
    items: list[AuditEntryView]
    # Pass as `after` for the next (older) page; null on the last page.
    next: int | None = None


class GradescopeTest(BaseModel):
    name: str
    score: float
    max_score: float
    output: str
    visibility: Literal["visible", "hidden", "after_due_date", "after_published"]


class GradescopeResults(BaseModel):
    """Gradescope's autograder results.json: `score` is the effective total (late penalty applied),
    each test an answer's raw score."""

    score: float
    output: str
    visibility: Literal["visible", "hidden", "after_due_date", "after_published"]
    tests: list[GradescopeTest]


class HistoryAnswer(BaseModel):
    verdict: Verdict | None
    # The automatic score (staff: always; students: when grades are visible).
    auto_score: float | None
    # The person's grade if any, else the automatic score; null: waiting for a TA.
    raw: float | None
    effective: float | None
    max_score: float
    feedback: str | None
    manual: ManualGradeView | None
    # Students only: set while the answer's hidden checks are held back; the verdict, scores and
    # feedback above are then the public checks' (the verdict null if every check is hidden), and
    # a person's grade of the answer waits with the hidden checks.
    hidden: HiddenChecksView | None = None


class HistorySubmission(BaseModel):
    id: uuid.UUID
    assignment_version: int
    status: Literal["queued", "running", "graded", "error"]
    created_at: datetime
    late_seconds: int
    late_penalty: float
    score: float | None
    effective_score: float | None
    max_score: float
    questions: dict[str, HistoryAnswer]
    # Students only: the scores leave out hidden checks whose results are held back.
    hidden_pending: bool = False


class StudentHistory(BaseModel):
    course: str
    assignment: str
    student: str
    grades_visible: bool
    submissions: list[HistorySubmission]
