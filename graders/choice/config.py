from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from graders._grader import GraderAnswer, GraderConfig


class PartialCredit(StrEnum):
    """PrairieLearn's checkbox partial-credit modes (pl-checkbox), under readable names."""

    OFF = "off"  # all or nothing
    NET_CORRECT = "net-correct"  # PL "PC": (right picks - wrong picks) / #correct, floored at 0
    EACH_ANSWER = "each-answer"  # PL "EDC": share of options whose picked/unpicked state is right
    COVERAGE = "coverage"  # PL "COV": (right / #correct) * (right / #picked)


class ChoiceConfig(GraderConfig):
    options: list[str] = Field(min_length=2, max_length=26)
    # Option numbers start at 1, as printed on the question.
    correct: list[int] = Field(min_length=1)
    multiple: bool = False
    partial_credit: PartialCredit = PartialCredit.OFF

    @model_validator(mode="after")
    def _key_is_consistent(self) -> ChoiceConfig:
        if len(set(self.correct)) != len(self.correct):
            raise ValueError("correct lists an option twice")
        for number in self.correct:
            if not 1 <= number <= len(self.options):
                raise ValueError(f"correct names option {number}, but options are 1..{len(self.options)}")
        if not self.multiple:
            if len(self.correct) != 1:
                raise ValueError("a single-choice question has exactly one correct option")
            if self.partial_credit is not PartialCredit.OFF:
                raise ValueError("partial credit needs multiple = true")
        return self


class ChoiceAnswer(GraderAnswer):
    choices: list[int] = Field(max_length=26)
