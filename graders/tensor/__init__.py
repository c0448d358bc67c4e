"""Numeric answers (vectors, matrices, tensors) compared with tolerances, with per-student variants."""

from graders.tensor.config import TensorAnswer, TensorConfig
from graders.tensor.grader import AnswerParseError, TensorGrader, parse_nested_numbers

__all__ = ["AnswerParseError", "TensorAnswer", "TensorConfig", "TensorGrader", "parse_nested_numbers"]
