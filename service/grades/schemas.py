"""What the gradebook and the question statistics answer (staff only)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from graders import Verdict


class GradebookCell(BaseModel):
    """The answer that counts for one student and question, and the parts of its score."""

    # effective = ROUND(raw x (1 - penalty), 6); None while it waits for a person.
    score: float | None
    # The manual grade if there is one, else the automatic score; None: needs grading.
    raw: float | None
    auto: float
    manual: float | None = Field(description="A TA's grade of an answer left to people")
    override: float | None = Field(description="A person's score replacing the automatic one")
    penalty: float = Field(description="The fraction the late rule takes, 0 to 1")
    late: bool
    verdict: Verdict
    needs_grading: bool
    submission_id: uuid.UUID


class QuestionColumn(BaseModel):
    key: str
    points: float


class GradebookRow(BaseModel):
    student: str
    total: float
    max_score: float
    # Only the questions the student answered (countably); a missing key: no answer.
    questions: dict[str, GradebookCell]


class Gradebook(BaseModel):
    course: str
    assignment: str
    # The newest version: its questions are the columns; older versions' other questions are left out.
    version: int
    counts: Literal["last", "best"]
    max_score: float
    questions: list[QuestionColumn]
    limit: int
    rows: list[GradebookRow]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page")


class HistogramBin(BaseModel):
    # [low, high); the last bin includes its high end (full marks).
    low: float
    high: float
    count: int


class MistakeCount(BaseModel):
    diagnosis: str
    message: str
    count: int


class QuestionStatistics(BaseModel):
    course: str
    assignment: str
    question: str
    kind: str
    points: float
    counts: Literal["last", "best"]
    # Over the counted answers of the course's students (one per student who answered).
    count: int
    # Over those with a score (not waiting for a person); null when none has one.
    mean: float | None
    median: float | None
    histogram: list[HistogramBin]
    verdicts: dict[str, int]
    needs_grading: int
    # What the graders' diagnostics name, per kind of mistake and grouped by their message.
    diagnoses: dict[str, int]
    mistakes: list[MistakeCount]
