"""Free-text answers, graded by a TA."""

from graders.manual.config import ManualAnswer, ManualConfig, RubricItem
from graders.manual.grader import ManualGrader

__all__ = ["ManualAnswer", "ManualConfig", "ManualGrader", "RubricItem"]
