"""Tensor answers: staged checks (parse, shape, values) and per-student variants."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from graders import GradingContext, Verdict
from graders.tensor import AnswerParseError, TensorConfig, TensorGrader, parse_nested_numbers

GRADER = TensorGrader()


def identity(x: Any) -> Any:
    return x


def draw(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.integers(0, 100, size=3).tolist()}


REFERENCE = {"identity": identity, "draw": draw}


def fixed(expected: Any, **tolerances: float) -> TensorConfig:
    return TensorConfig(reference="identity", inputs={"x": expected}, **tolerances)


def grade(config: TensorConfig, value: object, seed: int = 0) -> tuple[Verdict, str, dict[str, Any]]:
    result = GRADER.grade_raw_answer(config, {"value": value}, GradingContext(seed, REFERENCE))
    return result.verdict, result.feedback, result.details


def test_parse_accepts_rectangular_numbers() -> None:
    assert parse_nested_numbers(3, 10).shape == ()
    array = parse_nested_numbers([[1, 2.5], [3, 4]], 10)
    assert array.shape == (2, 2)
    assert array.dtype == np.float64


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([[1, 2], [3]], "ragged"),
        ([1, [2]], "mixes numbers and lists"),
        (["1", 2], "str"),
        ([True, 2], "bool"),
        ([None], "NoneType"),
        ([], "empty list"),
        ([[[[[[[[[1]]]]]]]]], "more than 8 dimensions"),
        (list(range(11)), "more than 10 elements"),
        ([10**400], "too large"),
    ],
)
def test_parse_refuses_what_is_not_a_tensor(value: object, message: str) -> None:
    with pytest.raises(AnswerParseError, match=message):
        parse_nested_numbers(value, 10)


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    value: object = 1
    for _ in range(50_000):
        value = [value]
    with pytest.raises(AnswerParseError, match="dimensions"):
        parse_nested_numbers(value, 10)


def test_values_within_tolerance_are_correct() -> None:
    config = fixed([6, 1, 2], rtol=1e-3, atol=0)
    assert grade(config, [6.005, 1.0009, 2])[0] is Verdict.CORRECT
    verdict, feedback, details = grade(config, [6.1, 1, 2])
    assert verdict is Verdict.INCORRECT
    assert "1 of 3 values" in feedback
    assert "at [0], where you gave 6.1" in feedback
    assert details["expected"] == [6.0, 1.0, 2.0]  # staff-only detail


def test_feedback_names_the_worst_element_and_not_the_expected_value() -> None:
    config = fixed([[1, 2], [3, 4]], atol=0.01, rtol=0)
    verdict, feedback, details = grade(config, [[1, 2.5], [3, 40]])
    assert verdict is Verdict.INCORRECT
    assert "2 of 4 values" in feedback
    assert "[1, 1]" in feedback
    assert "where you gave 40" in feedback
    assert "4" not in feedback.split("gave")[1].replace("40", "")
    assert details["worst_index"] == [1, 1]


def test_shape_mismatch_names_both_shapes() -> None:
    verdict, feedback, _ = grade(fixed([6, 1, 2]), [[6, 1, 2]])
    assert verdict is Verdict.INCORRECT
    assert feedback == "Wrong shape: expected (3,), got (1, 3)."


def test_non_finite_values_are_incorrect() -> None:
    verdict, feedback, _ = grade(fixed([1.0, 2.0]), [1.0, float("nan")])
    assert verdict is Verdict.INCORRECT
    assert "non-finite" in feedback


def test_answers_of_the_wrong_form_are_invalid() -> None:
    for raw in ({"value": "6,1,2"}, {"value": True}, {"values": [1]}, "6"):
        result = GRADER.grade_raw_answer(fixed([1]), raw, GradingContext(0, REFERENCE))
        assert result.verdict is Verdict.INVALID


def test_variants_depend_on_the_seed_and_are_graded_against_their_own_reference() -> None:
    config = TensorConfig(reference="identity", variant="draw")
    inputs_a = GRADER.inputs_for(config, GradingContext(1, REFERENCE))
    inputs_b = GRADER.inputs_for(config, GradingContext(2, REFERENCE))
    assert inputs_a == GRADER.inputs_for(config, GradingContext(1, REFERENCE))
    assert inputs_a != inputs_b
    assert grade(config, inputs_a["x"], seed=1)[0] is Verdict.CORRECT
    assert grade(config, inputs_a["x"], seed=2)[0] is Verdict.INCORRECT


def test_config_needs_exactly_one_source_of_inputs() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TensorConfig(reference="identity")
    with pytest.raises(ValueError, match="exactly one"):
        TensorConfig(reference="identity", inputs={"x": 1}, variant="draw")
    with pytest.raises(ValueError, match="pattern"):
        TensorConfig(reference="os.system", inputs={"x": 1})


def test_public_config_shows_inputs_but_not_the_reference() -> None:
    public = GRADER.public_config(fixed([1, 2]))
    assert public == {"rtol": 1e-5, "atol": 1e-8, "inputs": {"x": [1, 2]}, "per_student_variant": False}
    assert GRADER.reference_names(TensorConfig(reference="identity", variant="draw")) == ["identity", "draw"]
