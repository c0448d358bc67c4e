from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from graders._context import GradingContext
from graders._grader import Grader, GraderKind
from graders._result import GradeResult, JSONValue
from graders.tensor.config import TensorAnswer, TensorConfig

FloatArray = npt.NDArray[np.float64]
MAX_DIMENSIONS = 8


class AnswerParseError(ValueError):
    pass


def parse_nested_numbers(value: object, max_elements: int) -> FloatArray:
    """Turn a JSON number or nested list into a float64 array, checking shape and types first.

    Walks iteratively, so deep nesting cannot exhaust the stack, and never lets numpy coerce
    strings or booleans into numbers.
    """
    shape: list[int] = []
    level: list[object] = [value]
    depth = 0
    while True:
        lists = [item for item in level if isinstance(item, list)]
        if not lists:
            break
        if len(lists) != len(level):
            raise AnswerParseError(f"mixes numbers and lists at depth {depth}")
        lengths = {len(item) for item in lists}
        if len(lengths) != 1:
            raise AnswerParseError(f"is ragged: rows of lengths {sorted(lengths)} at depth {depth}")
        (length,) = lengths
        if length == 0:
            raise AnswerParseError("contains an empty list")
        depth += 1
        if depth > MAX_DIMENSIONS:
            raise AnswerParseError(f"has more than {MAX_DIMENSIONS} dimensions")
        shape.append(length)
        if len(level) * length > max_elements:
            raise AnswerParseError(f"has more than {max_elements} elements")
        level = [element for item in lists for element in item]
    for leaf in level:
        if isinstance(leaf, bool) or not isinstance(leaf, int | float):
            raise AnswerParseError(f"contains {type(leaf).__name__} {leaf!r:.40}, not a number")
    try:
        flat = np.array(level, dtype=np.float64)
    except OverflowError:
        raise AnswerParseError("contains a number too large for float64") from None
    return flat.reshape(shape)


def _to_json(value: Any) -> JSONValue:
    if isinstance(value, np.ndarray):
        return value.tolist()  # type: ignore[no-any-return]
    if isinstance(value, np.generic):
        return value.item()  # type: ignore[no-any-return]
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot express {type(value).__name__} as JSON")


def _index_text(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(i) for i in index) + "]"


class TensorGrader(Grader[TensorConfig, TensorAnswer]):
    """Staged comparison: parse, then shape, then values within rtol/atol."""

    kind: ClassVar[GraderKind] = GraderKind.TENSOR
    version: ClassVar[str] = "1"
    config_model = TensorConfig
    answer_model = TensorAnswer

    def inputs_for(self, config: TensorConfig, context: GradingContext) -> dict[str, JSONValue]:
        """The inputs this student works on: the fixed ones, or the student's own variant."""
        if config.inputs is not None:
            return dict(config.inputs)
        assert config.variant is not None
        drawn = context.reference_function(config.variant)(np.random.default_rng(context.variant_seed))
        as_json = _to_json(drawn)
        if not isinstance(as_json, dict):
            raise TypeError(f"variant function {config.variant!r} must return a dict of inputs")
        return as_json

    def expected_for(self, config: TensorConfig, context: GradingContext) -> FloatArray:
        inputs = {name: np.asarray(value) for name, value in self.inputs_for(config, context).items()}
        expected = context.reference_function(config.reference)(**inputs)
        return np.asarray(expected, dtype=np.float64)

    def grade(self, config: TensorConfig, answer: TensorAnswer, context: GradingContext) -> GradeResult:
        try:
            given = parse_nested_numbers(answer.value, config.max_elements)
        except AnswerParseError as error:
            return GradeResult.invalid(f"The answer {error}.")
        expected = self.expected_for(config, context)
        details: dict[str, JSONValue] = {
            "expected": _to_json(expected),
            "rtol": config.rtol,
            "atol": config.atol,
        }
        if given.shape != expected.shape:
            return GradeResult.from_fraction(
                0.0,
                f"Wrong shape: expected {tuple(expected.shape)}, got {tuple(given.shape)}.",
                details | {"stage": "shape"},
            )
        if not np.all(np.isfinite(given)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(given))[0])
            return GradeResult.from_fraction(
                0.0,
                f"The answer holds a non-finite number at {_index_text(bad)}.",
                details | {"stage": "values"},
            )
        close = np.isclose(given, expected, rtol=config.rtol, atol=config.atol)
        if bool(np.all(close)):
            return GradeResult.from_fraction(1.0, "Correct.", details | {"stage": "values"})
        # Rank the misses by how far beyond the tolerance they lie.
        excess = np.abs(given - expected) - (config.atol + config.rtol * np.abs(expected))
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), given.shape))
        wrong = int(np.count_nonzero(~close))
        feedback = (
            f"{wrong} of {given.size} values are outside the tolerance (rtol {config.rtol:g}, "
            f"atol {config.atol:g}); the furthest off is at {_index_text(worst)}, "
            f"where you gave {given[worst]:g}."
        )
        return GradeResult.from_fraction(
            0.0, feedback, details | {"stage": "values", "worst_index": list(worst)}
        )

    def reference_names(self, config: TensorConfig) -> list[str]:
        return [config.reference] + ([config.variant] if config.variant else [])

    def self_check(self, config: TensorConfig, context: GradingContext) -> None:
        expected = self.expected_for(config, context)
        if expected.size > config.max_elements:
            raise ValueError(f"the reference output has {expected.size} elements, over max_elements")

    def public_config(self, config: TensorConfig) -> dict[str, JSONValue]:
        public: dict[str, JSONValue] = {"rtol": config.rtol, "atol": config.atol}
        if config.inputs is not None:
            public["inputs"] = dict(config.inputs)
        public["per_student_variant"] = config.variant is not None
        return public
