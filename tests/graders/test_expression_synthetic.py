"""The expression grader on small made-up questions: matrices, undefined reference points."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from graders import GradingContext, Verdict
from graders.expression import ExpressionConfig, ExpressionGrader
from graders.expression.points import draw_points


def matrix_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    w = rng.normal(size=(2, 3))
    x = rng.normal(size=3)
    return {"W": w, "x": x}, w


def product_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    w = rng.normal(size=(2, 3))
    x = rng.normal(size=3)
    return {"W": w, "x": x}, w @ x


CALLS = {"n": 0}


def sometimes_undefined(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    CALLS["n"] += 1
    a = rng.normal()
    expected = float("nan") if CALLS["n"] % 3 == 0 else a * 2
    return {"W": np.zeros((2, 3)), "x": np.full(3, a)}, expected


REFERENCE = {"matrix": matrix_point, "product": product_point, "undefined": sometimes_undefined}
SYMBOLS = [{"name": "W", "shape": [2, 3], "latex": ["W"]}, {"name": "x", "shape": [3], "latex": ["x"]}]


def config(reference: str) -> ExpressionConfig:
    return ExpressionConfig(reference=reference, symbols=SYMBOLS, functions=["transpose", "sum"], points=8)


def grade(reference: str, expression: str) -> tuple[Verdict, str]:
    result = ExpressionGrader().grade_raw_answer(
        config(reference), {"expression": expression}, GradingContext(0, REFERENCE)
    )
    return result.verdict, result.feedback


def test_a_transposed_matrix_is_named() -> None:
    assert grade("matrix", "W")[0] is Verdict.CORRECT
    verdict, feedback = grade("matrix", "transpose(W)")
    assert verdict is Verdict.INCORRECT
    assert feedback == "The answer is the transpose of what is due."
    assert grade("matrix", r"W^\top")[1] == "The answer is the transpose of what is due."


def test_matrix_products_and_their_shapes() -> None:
    assert grade("product", "W @ x")[0] is Verdict.CORRECT
    assert grade("product", r"W \cdot x")[0] is Verdict.CORRECT  # \cdot of two non-scalars: W @ x
    verdict, feedback = grade("product", "x @ W")
    assert verdict is Verdict.INCORRECT  # named when read: the declared shapes cannot fit
    assert feedback == (
        "x (vector of 3) and W (2 x 3) do not fit in a matrix product (@): a matrix product needs 3 = 2; "
        "did you mean W.T?"
    )
    assert "a matrix of shape 2 x 3" in grade("product", "W")[1]


def test_points_where_the_reference_is_undefined_are_drawn_again() -> None:
    batch = draw_points(config("undefined"), sometimes_undefined)
    assert batch.size == 8
    assert np.all(np.isfinite(batch.expected))
    assert CALLS["n"] > 8


def test_a_reference_that_is_never_defined_fails_loudly() -> None:
    def never(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
        return {"W": np.zeros((2, 3)), "x": np.zeros(3)}, float("inf")

    with pytest.raises(ValueError, match="undefined"):
        draw_points(config("undefined"), never)
