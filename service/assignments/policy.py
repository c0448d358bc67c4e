"""An assignment's policy: when it opens and is due, the late rule, attempt limits, which answer
counts, and whether grades wait for a release. Pure rules, no database: the material's `[policy]`
and the course's override through the API are both this model; docs/grading-policy.md is its prose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ATTEMPTS = 10_000


class LateRule(BaseModel):
    """`penalty_percent` of each score per `period_hours` started after the due time, up to 100 %;
    after `cutoff_hours` past the due time submissions are refused (None: never)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    penalty_percent: float = Field(ge=0, le=100)
    period_hours: float = Field(default=24, gt=0, le=24 * 366)
    cutoff_hours: float | None = Field(default=None, ge=0, le=24 * 366)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # An IANA zone; opens_at and due_at written without an offset are read in it.
    timezone: str = "UTC"
    opens_at: datetime | None = None
    due_at: datetime | None = None
    # None with a due time: nothing is accepted after it. {penalty_percent = 0}: late, no penalty.
    late: LateRule | None = None
    # Attempts per question (answers graded `invalid` or `error` use none); per-question exceptions.
    max_attempts: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS)
    question_attempts: dict[str, int] = Field(default_factory=dict)
    # Submissions per assignment (one with only `invalid`/`error` answers uses none).
    max_submissions: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS)
    # Which of a student's answers to a question counts: the newest, or the highest effective score.
    counts: Literal["last", "best"] = "last"
    # Students see their scores only after the staff release the assignment's grades.
    hold_grades: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None
        return name

    @field_validator("question_attempts")
    @classmethod
    def _attempts_in_range(cls, limits: dict[str, int]) -> dict[str, int]:
        for key, limit in limits.items():
            if not 1 <= limit <= MAX_ATTEMPTS:
                raise ValueError(f"question_attempts.{key} must be 1 to {MAX_ATTEMPTS}")
        return limits

    @model_validator(mode="after")
    def _in_zone_and_ordered(self) -> Policy:
        zone = ZoneInfo(self.timezone)
        for name in ("opens_at", "due_at"):
            moment: datetime | None = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                object.__setattr__(self, name, moment.replace(tzinfo=zone))
        if self.opens_at is not None and self.due_at is not None and self.opens_at >= self.due_at:
            raise ValueError("opens_at must come before due_at")
        return self

    def attempt_limit(self, question_key: str) -> int | None:
        return self.question_attempts.get(question_key, self.max_attempts)

    def as_json(self) -> dict[str, object]:
        """What is stored (AssignmentVersion.policy, AssignmentPolicy.policy): instants with offsets."""
        return self.model_dump(mode="json", exclude_defaults=True)


@dataclass(frozen=True, slots=True)
class Lateness:
    """A submission's moment against a student's due time."""

    late_seconds: int
    # The fraction of each score the late rule takes, 0 to 1 (rounded to 6 decimals).
    penalty: float
    # Why it is refused (not open yet, past the cutoff), or None if accepted.
    refused: str | None = None


def lateness(policy: Policy, submitted_at: datetime, due_at: datetime | None = None) -> Lateness:
    """Apply the policy to a submission at `submitted_at`; `due_at` is the student's extension if
    they have one (the cutoff moves with it). Exactly at the due time is on time; any fraction of a
    period after it counts as a period started."""
    if policy.opens_at is not None and submitted_at < policy.opens_at:
        return Lateness(0, 0.0, f"the assignment opens at {_shown(policy.opens_at, policy)}")
    due = due_at if due_at is not None else policy.due_at
    # In UTC: Python subtracts and adds to datetimes of one zone on the wall clock, so across a
    # DST change the elapsed time (and the cutoff) would be an hour off.
    submitted_at = submitted_at.astimezone(UTC)
    due = None if due is None else due.astimezone(UTC)
    if due is None or submitted_at <= due:
        return Lateness(0, 0.0)
    late = submitted_at - due
    late_seconds = math.ceil(late.total_seconds())
    rule = policy.late
    if rule is None:
        return Lateness(late_seconds, 1.0, f"the assignment was due at {_shown(due, policy)}")
    if rule.cutoff_hours is not None and late > timedelta(hours=rule.cutoff_hours):
        cutoff = due + timedelta(hours=rule.cutoff_hours)
        return Lateness(late_seconds, 1.0, f"late submissions closed at {_shown(cutoff, policy)}")
    periods = math.ceil(late / timedelta(hours=rule.period_hours))
    return Lateness(late_seconds, round(min(1.0, periods * rule.penalty_percent / 100), 6))


def _shown(moment: datetime, policy: Policy) -> str:
    """An instant as a student reads it: in the course's zone, with its offset."""
    return moment.astimezone(ZoneInfo(policy.timezone)).isoformat(timespec="minutes")


@dataclass(frozen=True, slots=True)
class StoredRules:
    """What the rules in force are made of, as stored: the newest version's id and material policy,
    and the course's override row (its policy, None when only a release is stored; and its release
    time), None when there is none."""

    newest_version_id: int
    material_policy: dict[str, Any]
    override: tuple[dict[str, Any] | None, datetime | None] | None

    @classmethod
    def from_columns(
        cls,
        newest_version_id: int,
        material_policy: dict[str, Any] | None,
        override_id: int | None,
        override_policy: dict[str, Any] | None,
        released_at: datetime | None,
    ) -> StoredRules:
        """From the columns of a newest version LEFT JOIN its assignment's override row."""
        override = None if override_id is None else (override_policy, released_at)
        return cls(int(newest_version_id), dict(material_policy or {}), override)
