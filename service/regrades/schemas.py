from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from graders import Verdict

# A course's roster fits; a longer list is a mistake (or an attack), refused with a 422.
MAX_STUDENTS = 2_000

# No control characters: PostgreSQL refuses a NUL in a parameter, and no username holds one.
Username = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
RegradeStatus = Literal["running", "done"]


class RegradeCreate(BaseModel):
    """What to grade again against the assignment's newest version."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(
        default=None, min_length=1, max_length=64, description="One question's id; omitted: every question."
    )
    students: list[Username] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STUDENTS,
        description="Usernames of the course's students; omitted: every student with a submission.",
    )
    keep_manual: bool = Field(
        default=True,
        description="False: the TAs' grades and overrides of the regraded questions are cleared "
        "(each clearing is audited) and the new automatic scores count.",
    )


class RegradeProgress(BaseModel):
    done: int = Field(description="Jobs that ended (graded or failed).")
    total: int
    errors: int = Field(description="Jobs that ended in an error; their answers keep their old results.")


class RegradeChange(BaseModel):
    """One answer whose automatic result the regrade changed."""

    student: str
    submission_id: uuid.UUID
    question: str
    old_score: float | None
    new_score: float
    old_verdict: Verdict | None
    new_verdict: Verdict
    manual_score: float | None = Field(
        description="A person's grade that was kept and still governs this answer (its score "
        "counts, not new_score); null when the automatic score counts."
    )


class RegradeView(BaseModel):
    id: uuid.UUID
    course: str
    assignment: str
    assignment_version: int = Field(description="The version the submissions were graded against.")
    question: str | None
    students: list[str] | None
    keep_manual: bool
    requested_by: str
    status: RegradeStatus
    progress: RegradeProgress
    created_at: datetime
    finished_at: datetime | None
    changes: list[RegradeChange] | None = Field(
        description="Every answer whose score or verdict changed, once the regrade is done; "
        "null while it runs."
    )
    url: str


class RegradeList(BaseModel):
    course: str
    assignment: str
    limit: int
    offset: int
    items: list[RegradeView] = Field(description="Newest first; `changes` is left out (null) here.")
