"""What every grader returns: a verdict, a fraction of the points, feedback for the student."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from pydantic import JsonValue

# A recursive JSON alias that pydantic can validate (a hand-written one recurses forever).
JSONValue: TypeAlias = JsonValue


class Verdict(StrEnum):
    CORRECT = "correct"
    PARTIAL = "partial"
    INCORRECT = "incorrect"
    # The answer could not be graded (malformed, out of range); it costs the student nothing.
    INVALID = "invalid"
    PENDING_MANUAL = "pending_manual"
    # The grader itself failed; staff must look, the student is not blamed.
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class GradeResult:
    verdict: Verdict
    fraction: float
    feedback: str
    # Staff-only detail (expected values, diagnostics). Never shown to students.
    details: dict[str, JSONValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must lie in [0, 1], got {self.fraction}")

    @classmethod
    def from_fraction(
        cls, fraction: float, feedback: str, details: dict[str, JSONValue] | None = None
    ) -> GradeResult:
        """Correct at 1, incorrect at 0, partial in between."""
        if fraction >= 1.0:
            verdict = Verdict.CORRECT
        elif fraction <= 0.0:
            verdict = Verdict.INCORRECT
        else:
            verdict = Verdict.PARTIAL
        return cls(verdict, min(max(fraction, 0.0), 1.0), feedback, details or {})

    @classmethod
    def invalid(cls, feedback: str, details: dict[str, JSONValue] | None = None) -> GradeResult:
        return cls(Verdict.INVALID, 0.0, feedback, details or {})
