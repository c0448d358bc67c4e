"""Multiple-choice questions, single and multi-select, with PrairieLearn's partial-credit modes."""

from graders.choice.config import ChoiceAnswer, ChoiceConfig, PartialCredit
from graders.choice.grader import ChoiceGrader, choice_fraction

__all__ = ["ChoiceAnswer", "ChoiceConfig", "ChoiceGrader", "PartialCredit", "choice_fraction"]
