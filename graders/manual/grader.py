from __future__ import annotations

from typing import ClassVar

from graders._context import GradingContext
from graders._grader import Grader, GraderKind
from graders._result import GradeResult, JSONValue, Verdict
from graders.manual.config import ManualAnswer, ManualConfig


class ManualGrader(Grader[ManualConfig, ManualAnswer]):
    """Free text: stored for a TA, who gives the score later."""

    kind: ClassVar[GraderKind] = GraderKind.MANUAL
    version: ClassVar[str] = "1"
    config_model = ManualConfig
    answer_model = ManualAnswer

    def grade(self, config: ManualConfig, answer: ManualAnswer, context: GradingContext) -> GradeResult:
        if not answer.text.strip():
            return GradeResult.invalid("The answer is empty.")
        if len(answer.text) > config.max_length:
            return GradeResult.invalid(
                f"The answer is {len(answer.text)} characters long; the limit is {config.max_length}."
            )
        return GradeResult(
            Verdict.PENDING_MANUAL,
            0.0,
            "Waiting for a TA to grade this answer.",
            {"rubric": [item.model_dump() for item in config.rubric]},
        )

    def public_config(self, config: ManualConfig) -> dict[str, JSONValue]:
        return {"max_length": config.max_length}
