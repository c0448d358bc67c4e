from __future__ import annotations

from typing import ClassVar

from graders._context import GradingContext
from graders._grader import Grader, GraderKind
from graders._result import GradeResult, JSONValue
from graders.choice.config import ChoiceAnswer, ChoiceConfig, PartialCredit


def choice_fraction(
    picked: frozenset[int], correct: frozenset[int], option_count: int, mode: PartialCredit
) -> float:
    """The share of the points a set of picks earns under a partial-credit mode."""
    if picked == correct:
        return 1.0
    right = len(picked & correct)
    wrong = len(picked - correct)
    missed = len(correct - picked)
    if mode is PartialCredit.OFF:
        return 0.0
    if mode is PartialCredit.NET_CORRECT:
        return max(0.0, (right - wrong) / len(correct))
    if mode is PartialCredit.EACH_ANSWER:
        return 1.0 - (wrong + missed) / option_count
    if mode is PartialCredit.COVERAGE:
        return 0.0 if not picked else (right / len(correct)) * (right / len(picked))
    raise AssertionError(f"unhandled partial-credit mode {mode}")


class ChoiceGrader(Grader[ChoiceConfig, ChoiceAnswer]):
    kind: ClassVar[GraderKind] = GraderKind.CHOICE
    version: ClassVar[str] = "1"
    config_model = ChoiceConfig
    answer_model = ChoiceAnswer

    def grade(self, config: ChoiceConfig, answer: ChoiceAnswer, context: GradingContext) -> GradeResult:
        option_count = len(config.options)
        if len(set(answer.choices)) != len(answer.choices):
            return GradeResult.invalid("An option is picked more than once.")
        for number in answer.choices:
            if not 1 <= number <= option_count:
                return GradeResult.invalid(
                    f"There is no option {number}: the options are numbered 1 to {option_count}."
                )
        if not answer.choices:
            return GradeResult.invalid("No option is picked.")
        if not config.multiple and len(answer.choices) != 1:
            return GradeResult.invalid("Pick exactly one option.")

        picked = frozenset(answer.choices)
        correct = frozenset(config.correct)
        fraction = choice_fraction(picked, correct, option_count, config.partial_credit)
        details: dict[str, JSONValue] = {
            "picked": [int(number) for number in sorted(picked)],
            "correct": [int(number) for number in sorted(correct)],
            "partial_credit": config.partial_credit.value,
        }
        if fraction >= 1.0:
            feedback = "Correct."
        elif fraction > 0.0:
            feedback = f"Partly correct: {fraction:.0%} of the points."
        else:
            feedback = "Incorrect."
        return GradeResult.from_fraction(fraction, feedback, details)

    def public_config(self, config: ChoiceConfig) -> dict[str, JSONValue]:
        return {
            "options": list(config.options),
            "multiple": config.multiple,
            "partial_credit": config.partial_credit.value,
        }
