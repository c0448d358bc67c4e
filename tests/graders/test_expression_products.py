"""Products in LaTeX answers: side by side and \\cdot are the matrix product of two non-scalars and a
scaling with a scalar; \\times * \\odot \\circ are elementwise; the declared shapes decide, and a
product whose shapes do not fit (or that could be read two ways) is refused with a message that
names the factors. References are computed with torch.autograd on a linear layer and attention."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import torch

from graders import GradeResult, GradingContext, Verdict, get_grader
from graders.expression import ExpressionAnswer, ExpressionConfig, ExpressionGrader
from graders.expression.functions import matmul, matmul_shape
from tests.graders.hw5_expressions import hw5

_REGISTERED = get_grader("expression")
assert isinstance(_REGISTERED, ExpressionGrader)
GRADER: ExpressionGrader = _REGISTERED


def _tensor(rng: np.random.Generator, *shape: int) -> torch.Tensor:
    return torch.tensor(rng.normal(size=shape), dtype=torch.float64, requires_grad=True)


def _linear_layer(rng: np.random.Generator) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """y = W x + b with column vectors, L = 1/2 ||y - t||^2: the symbols, dL/dW and dL/dx."""
    w, x, b, t = _tensor(rng, 2, 3), _tensor(rng, 3, 1), _tensor(rng, 2, 1), _tensor(rng, 2, 1)
    y = w @ x + b
    (0.5 * ((y - t) ** 2).sum()).backward()
    assert w.grad is not None
    assert x.grad is not None
    symbols = {
        name: value.detach().numpy() for name, value in {"W": w, "x": x, "b": b, "t": t, "y": y}.items()
    }
    return symbols, w.grad, x.grad


def linear_dw(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    symbols, grad_w, _grad_x = _linear_layer(rng)
    return symbols, grad_w.numpy()


def linear_dx(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    symbols, _grad_w, grad_x = _linear_layer(rng)
    return symbols, grad_x.numpy()


def _attention(rng: np.random.Generator) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """O = A V with dL/dO = G: the symbols, dL/dV and dL/dA."""
    a, v = _tensor(rng, 3, 4), _tensor(rng, 4, 2)
    g = torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float64)
    ((a @ v) * g).sum().backward()
    assert a.grad is not None
    assert v.grad is not None
    return {"A": a.detach().numpy(), "V": v.detach().numpy(), "G": g.numpy()}, v.grad, a.grad


def attention_dv(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    symbols, grad_v, _grad_a = _attention(rng)
    return symbols, grad_v.numpy()


def attention_da(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    symbols, _grad_v, grad_a = _attention(rng)
    return symbols, grad_a.numpy()


CONTEXT = GradingContext(
    0,
    {
        "linear_dw": linear_dw,
        "linear_dx": linear_dx,
        "attention_dv": attention_dv,
        "attention_da": attention_da,
    },
)
LAYER = [
    {"name": "W", "shape": [2, 3], "latex": ["W"]},
    {"name": "x", "shape": [3, 1], "latex": ["x"]},
    {"name": "b", "shape": [2, 1], "latex": ["b"]},
    {"name": "t", "shape": [2, 1], "latex": ["t"]},
    {"name": "y", "shape": [2, 1], "latex": ["y"]},
]
ATTENTION = [
    {"name": "A", "shape": [3, 4], "latex": ["A"]},
    {"name": "V", "shape": [4, 2], "latex": ["V"]},
    {"name": "G", "shape": [3, 2], "latex": ["G"]},
]


def question(reference: str) -> ExpressionConfig:
    symbols = ATTENTION if reference.startswith("attention") else LAYER
    return ExpressionConfig(
        reference=reference,
        symbols=symbols,
        index_names=["i", "j", "k"],
        functions=["transpose", "sum"],
        points=8,
    )


QUESTIONS = {name: question(name) for name in ("linear_dw", "linear_dx", "attention_dv", "attention_da")}


def grade(reference: str, expression: str, answer_format: str | None = None) -> GradeResult:
    answer = ExpressionAnswer(expression=expression, format=answer_format)  # type: ignore[arg-type]
    return GRADER.grade(QUESTIONS[reference], answer, CONTEXT)


@pytest.mark.parametrize(
    ("reference", "expression", "answer_format"),
    [
        # dL/dW = (y - t) x^T: the outer product of two column vectors.
        ("linear_dw", r"(y - t) x^\top", None),
        ("linear_dw", r"\left(y - t\right) x^{\top}", None),
        ("linear_dw", "(Wx + b - t)x^T", "latex"),
        ("linear_dw", r"(W x + b - t) \cdot x^\top", None),
        ("linear_dw", r"\frac{1}{2} \cdot 2 (y - t) x^\top", None),
        ("linear_dw", r"2 \times \frac{1}{2} (y - t) x^\top", None),
        ("linear_dw", r"(y x^\top - t x^\top)", None),
        ("linear_dw", "(y - t) @ x.T", "text"),
        # dL/dx = W^T (y - t).
        ("linear_dx", r"W^\top (y - t)", None),
        ("linear_dx", "W^T(Wx + b - t)", "latex"),
        ("linear_dx", r"W^\top \cdot (y - t)", None),
        ("linear_dx", r"(y - t)^\top W", None),  # the transpose of what is due: named, below
        ("linear_dx", "W.T @ (y - t)", "text"),
        # Attention, O = A V: dL/dV = A^T G, dL/dA = G V^T.
        ("attention_dv", r"A^\top G", None),
        ("attention_dv", r"(G^\top A)^\top", None),
        ("attention_da", r"G V^\top", None),
        ("attention_da", r"G \cdot V^{T}", None),
    ],
)
def test_textbook_products_are_matrix_products(
    reference: str, expression: str, answer_format: str | None
) -> None:
    result = grade(reference, expression, answer_format)
    if expression == r"(y - t)^\top W":
        assert result.verdict is Verdict.INCORRECT
        assert result.feedback == "The answer is the transpose of what is due."
        return
    assert result.verdict is Verdict.CORRECT, (expression, result.feedback)


def test_side_by_side_reads_as_the_matrix_product_in_the_preview() -> None:
    preview = GRADER.preview(QUESTIONS["linear_dw"], {"expression": r"(y - t) x^\top"})
    assert preview["read_as"] == "(y - t) @ transpose(x)"
    scaled = GRADER.preview(QUESTIONS["linear_dw"], {"expression": r"2 (y - t) \cdot x^\top"})
    assert scaled["read_as"] == "2 * (y - t) @ transpose(x)"


def test_elementwise_operators_stay_elementwise() -> None:
    for operator in (r"\odot", r"\circ", r"\times", "*"):
        preview = GRADER.preview(
            QUESTIONS["linear_dw"], {"expression": f"(y - t) {operator} y", "format": "latex"}
        )
        assert preview["read_as"] == "(y - t) * y", operator
    result = grade("linear_dw", r"(y - t) \times x^\top")
    assert result.verdict is Verdict.INCORRECT
    assert result.details["diagnosis"] == "shape"
    assert result.feedback == (
        "(y - t) (2 x 1) and x^\\top (1 x 3) cannot be multiplied elementwise: that needs equal shapes "
        "(or a scalar); for their matrix product write them side by side or with \\cdot "
        "(\\times, *, \\odot and \\circ are elementwise)."
    )


def test_a_shape_mismatch_names_the_factors_and_the_fix_when_the_answer_is_read() -> None:
    result = grade("linear_dw", "(y - t) x", "latex")
    # A wrong answer, not an unreadable one: it costs an attempt like any other mistake.
    assert result.verdict is Verdict.INCORRECT
    assert result.details["diagnosis"] == "shape"
    assert result.feedback == (
        "(y - t) (2 x 1) and x (3 x 1) do not fit side by side: a matrix product needs 1 = 3; "
        "did you mean x^\\top?"
    )
    preview = GRADER.preview(QUESTIONS["linear_dx"], {"expression": r"W \cdot (y - t)"})
    assert preview["ok"] is False
    assert preview["error"] == (
        "W (2 x 3) and (y - t) (2 x 1) do not fit with \\cdot: a matrix product needs 3 = 2; "
        "did you mean W^\\top?"
    )
    untransposed = grade("linear_dx", r"W^\top x")
    assert untransposed.feedback.endswith("a matrix product needs 2 = 3; did you mean W instead of W^\\top?")
    one_by_one = grade("linear_dw", r"(x^\top x) W")
    assert one_by_one.feedback == (
        "(x^\\top x) (1 x 1) and W (2 x 3) do not fit side by side: a matrix product needs 1 = 2 "
        "(a 1 x 1 matrix is a matrix here, not a scalar)."
    )
    text = grade("linear_dw", "(y - t) @ x", "text")
    assert text.verdict is Verdict.INCORRECT
    assert text.feedback.startswith("(y - t) (2 x 1) and x (3 x 1) do not fit in a matrix product (@)")
    assert text.feedback.endswith("did you mean x.T?")


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("y - x", "y (2 x 1) and x (3 x 1) cannot be subtracted"),
        (
            r"y + t^\top",
            "y (2 x 1) and t^\\top (1 x 2) cannot be added: that needs equal shapes (or a scalar); "
            "did you mean t instead of t^\\top?",
        ),
        (r"W \odot x", "W (2 x 3) and x (3 x 1) cannot be multiplied elementwise"),
    ],
)
def test_elementwise_mismatches_are_named(expression: str, fragment: str) -> None:
    result = grade("linear_dw", expression, "latex")
    assert result.verdict is Verdict.INCORRECT
    assert fragment in result.feedback


# --- 1-D vectors (hw5 declares w_yh and g_o as vectors of 2) ----------------------------------

Q2_2_PRODUCT = r"w_{hh}^{t-i} \prod_{k=i+1}^{t} \psi'(z_k)"


def _hw5(question_id: str, expression: str) -> GradeResult:
    configs, context = hw5()
    return GRADER.grade(configs[question_id], ExpressionAnswer(expression=expression), context)


@pytest.mark.parametrize(
    "dot_product",
    [
        r"w_{yh}^\top g_{o,t}",
        r"w_{yh} \cdot g_{o,t}",
        r"g_{o,t}^\top w_{yh}",
        r"w_{hh}^{t-i} w_{yh}^\top g_{o,t}",  # a scaled row is still a row
        r"-(-w_{yh})^\top g_{o,t}",
    ],
)
def test_a_transposed_vector_beside_a_vector_and_cdot_are_the_dot_product(dot_product: str) -> None:
    answer = dot_product + " " + Q2_2_PRODUCT
    if dot_product.startswith(r"w_{hh}"):
        answer = dot_product + r" \prod_{k=i+1}^{t} \psi'(z_k)"
    result = _hw5("q2_2", answer)
    assert result.verdict is Verdict.CORRECT, (answer, result.feedback)


def test_two_plain_vectors_side_by_side_are_ambiguous() -> None:
    result = _hw5("q2_2", r"g_{o,t} w_{yh} " + Q2_2_PRODUCT)
    assert result.verdict is Verdict.INVALID
    assert "two ways (a dot product or an elementwise product)" in result.feedback
    assert r"g_{o,t}^\top w_{yh} or g_{o,t} \cdot w_{yh}" in result.feedback
    assert r"g_{o,t} \odot w_{yh}" in result.feedback


def test_a_vector_beside_a_transposed_vector_is_an_outer_product_which_1d_vectors_lack() -> None:
    result = _hw5("q2_2", r"g_{o,t} w_{yh}^\top")
    assert result.verdict is Verdict.INVALID
    assert "outer product" in result.feedback
    assert r"g_{o,t}^\top w_{yh}" in result.feedback


def test_the_hw5_handin_keeps_its_elementwise_product() -> None:
    configs, _context = hw5()
    preview = GRADER.preview(configs["q2_2"], {"expression": r"g_{ot} \times w_{yh} \times w_{hh}^{t-i}"})
    assert preview["read_as"] == "g_o[t] * w_yh * w_hh ** (t - i)"
    result = _hw5("q2_2", r"g_{ot} \times w_{yh} \times w_{hh}^{t-i} \times \prod_{k=0}^{t-i-1} \psi'(z_t)")
    assert result.verdict is Verdict.INCORRECT
    assert result.details["diagnosis"] == "shape"


# --- the matrix product itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [((2, 3), (3, 4)), ((2, 3), (3,)), ((3,), (3, 4)), ((3,), (3,)), ((3, 1), (1, 4)), ((1, 3), (3, 1))],
)
def test_matmul_agrees_with_numpy_at_every_point(left: tuple[int, ...], right: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    points = 5
    a, b = rng.normal(size=(*left, points)), rng.normal(size=(*right, points))
    product = matmul(a, b)
    for point in range(points):
        np.testing.assert_allclose(product[..., point], np.matmul(a[..., point], b[..., point]))
    assert matmul_shape(left, right) == np.matmul(np.zeros(left), np.zeros(right)).shape


def _fastest_read(config: ExpressionConfig, expression: str) -> tuple[float, str | None]:
    timings, error = [], None
    for _ in range(3):
        started = time.process_time()
        error = GRADER.read(config, expression, "latex").error
        timings.append(time.process_time() - started)
    return min(timings), error


def test_long_products_are_read_fast_and_bounded() -> None:
    config = QUESTIONS["attention_dv"]
    seconds, error = _fastest_read(config, r"A^\top G " + r"G^\top G " * 30)
    assert error is None
    assert seconds < 0.05
    for hostile in (
        r"A^\top G " + r"G^\top G " * 200,
        r"G \cdot " * 250 + "G",
        r"G \odot " * 250 + "G",
        "G " * 999 + "G",
        r"(G^\top " * 40 + "G" + ")" * 40,
    ):
        seconds, error = _fastest_read(config, hostile)
        assert error is not None, hostile[:40]
        assert seconds < 0.05, f"{seconds * 1000:.1f} ms for {hostile[:40]!r}"
