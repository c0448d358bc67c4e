from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.assignments.policy import Policy

# What PostgreSQL cannot store in text: a NUL, or a lone surrogate (not UTF-8). (submissions has
# the same check, but policies sits below submissions and cannot import it.)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class PolicyView(BaseModel):
    course: str
    assignment: str
    # The policy in force: the course's own (set through the API) or the material's.
    policy: Policy
    source: Literal["course", "material"]
    # When the staff released grades held back by `hold_grades` (None: not released).
    released_at: datetime | None
    grades_visible_to_students: bool
    # Whether students see the results of hidden notebook checks: once grades are released.
    hidden_results_visible: bool = False
    # The caller's own due time when they have an extension (students only).
    your_due_at: datetime | None = None


class ExtensionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Without an offset it is read in the policy's time zone.
    due_at: datetime
    reason: str = Field(default="", max_length=2_000)

    @field_validator("reason")
    @classmethod
    def _storable(cls, reason: str) -> str:
        if _UNSTORABLE.search(reason):
            raise ValueError("the reason holds a NUL character or a lone surrogate")
        return reason


class ExtensionView(BaseModel):
    student: str
    # In the policy's time zone.
    due_at: datetime
    reason: str
    granted_by: str | None
    created_at: datetime


class ExtensionList(BaseModel):
    course: str
    assignment: str
    items: list[ExtensionView]


class LatenessView(BaseModel):
    """How late a submission came against the student's due time, and what the late rule takes."""

    late_seconds: int
    # The fraction of each score taken, 0 to 1.
    penalty: float
    # The due time the submission was measured against (the student's extension if they have one),
    # in the policy's time zone; None when the assignment has no due time.
    due_at: datetime | None
    extended: bool
    # One line for the student: "2 days started late: -20 %".
    why: str
