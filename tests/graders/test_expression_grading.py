"""Grading gradient formulas numerically against torch.autograd, and naming the mistake."""

from __future__ import annotations

import time

import pytest

from graders import Verdict
from graders.expression import Diagnosis
from tests.graders.hw5_expressions import GRADER, HANDIN_LATEX, REFERENCE_LATEX, REFERENCE_TEXT, hw5


def grade(question: str, expression: str, answer_format: str | None = None):  # type: ignore[no-untyped-def]
    configs, context = hw5()
    answer: dict[str, str] = {"expression": expression}
    if answer_format:
        answer["format"] = answer_format
    return GRADER.grade_raw_answer(configs[question], answer, context)


@pytest.mark.parametrize("question", sorted(REFERENCE_TEXT))
def test_the_spec_reference_formulas_are_correct_as_text_and_latex(question: str) -> None:
    for expression in (REFERENCE_TEXT[question], REFERENCE_LATEX[question]):
        result = grade(question, expression)
        assert result.verdict is Verdict.CORRECT, (expression, result.feedback)
        assert result.fraction == 1.0


def test_points_cover_every_admissible_index_and_enough_points() -> None:
    configs, context = hw5()
    batch = GRADER.points_for(configs["q2_2"], context)
    assert batch.size >= 32
    pairs = {(int(t), int(i)) for t, i in zip(batch.indices["t"], batch.indices["i"], strict=True)}
    assert pairs == {(t, i) for t in range(1, 4) for i in range(1, t + 1)}
    assert batch.expected.shape == (batch.size,)
    assert GRADER.points_for(configs["q2_1"], context).expected.shape[0] == 2


def test_the_handin_is_graded_with_feedback_that_names_the_mistake() -> None:
    q2_1 = grade("q2_1", HANDIN_LATEX["q2_1"])
    assert q2_1.verdict is Verdict.INCORRECT
    assert q2_1.feedback == "Wrong shape: the answer is a scalar, but a vector of 2 is due."
    assert q2_1.details["diagnosis"] == "shape"

    q2_2 = grade("q2_2", HANDIN_LATEX["q2_2"])
    assert q2_2.verdict is Verdict.INCORRECT

    q2_3 = grade("q2_3", HANDIN_LATEX["q2_3"])
    assert q2_3.verdict is Verdict.INCORRECT
    assert q2_3.details["diagnosis"] == "index"
    assert "index of h" in q2_3.feedback
    assert "h[t - 1]" in q2_3.feedback

    q2_4 = grade("q2_4", HANDIN_LATEX["q2_4"])
    assert q2_4.verdict is Verdict.CORRECT


@pytest.mark.parametrize(
    ("question", "expression", "diagnosis", "phrase"),
    [
        ("q2_1", "y[t] - yhat[t]", "sign", "sign is wrong"),
        ("q2_1", r"y_t - \hat{y}_t", "sign", "sign is wrong"),
        ("q2_1", "2 * (yhat[t] - y[t])", "factor", "2 times"),
        ("q2_3", "sum(g_h[i] * dpsi(z[i]) * h[i] for i in range(1, t+1))", "index", "index of h"),
        (
            "q2_2",
            "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(tanh(z[k]) for k in range(i+1, t+1))",
            None,
            "At t = ",
        ),
        ("q2_4", "gw_hh[3]", None, "the answer is"),
    ],
)
def test_mistakes_are_named(question: str, expression: str, diagnosis: str | None, phrase: str) -> None:
    result = grade(question, expression)
    assert result.verdict is Verdict.INCORRECT
    assert result.details.get("diagnosis") == diagnosis
    assert phrase in result.feedback


def test_partial_credit_per_diagnosis_is_configurable() -> None:
    configs, context = hw5()
    lenient = configs["q2_1"].model_copy(update={"partial_credit": {Diagnosis.SIGN: 0.5}})
    result = GRADER.grade_raw_answer(lenient, {"expression": "y[t] - yhat[t]"}, context)
    assert (result.verdict, result.fraction) == (Verdict.PARTIAL, 0.5)
    shape = GRADER.grade_raw_answer(lenient, {"expression": "sum(yhat[t] - y[t])"}, context)
    assert (shape.verdict, shape.fraction) == (Verdict.INCORRECT, 0.0)


def test_out_of_range_indices_are_reported() -> None:
    result = grade("q2_3", "sum(g_h[i] * dpsi(z[i]) * h[i-2] for i in range(1, t+1))")
    assert result.verdict is Verdict.INCORRECT
    assert "out of range" in result.feedback or "index of h" in result.feedback


def test_undeclared_symbols_are_invalid_and_the_allowed_ones_listed() -> None:
    result = grade("q2_1", "yhat[t] - target[t]")
    assert result.verdict is Verdict.INVALID
    assert "Unknown symbol 'target'" in result.feedback
    assert "yhat" in result.feedback
    latex = grade("q2_1", r"\hat{y}_t - p_t")
    assert latex.verdict is Verdict.INVALID
    assert "Unknown symbol p_{t}" in latex.feedback


def test_a_derivation_is_graded_on_its_last_right_hand_side() -> None:
    text = grade("q2_1", "dJ = yhat[t] - y[t]", "text")
    assert text.verdict is Verdict.CORRECT
    latex = grade("q2_1", r"\frac{\partial J_t}{\partial o_t} = -(y_t - \hat{y}_t) = \hat{y}_t - y_t")
    assert latex.verdict is Verdict.CORRECT


HOSTILE = [
    "__import__('os').system('id')",
    "__class__",
    "yhat.__class__.__mro__",
    "y[t].__dict__",
    "().__class__.__bases__[0].__subclasses__()",
    "lambda: 1",
    "(lambda x: x)(1)",
    "[x for x in range(10)]",
    "{k: 1 for k in y}",
    "sum(x for x in range(10) if x)",
    "x if y else z",
    "exec('1')",
    "eval('1')",
    "open('/etc/passwd').read()",
    "globals()",
    "getattr(y, 'x')",
    "9**9**9**9",
    "w_hh ** 1000000",
    "h[t] ** (10 ** 10)",
    "2 ** 2 ** 2 ** 2 ** 2",
    "x" * 1_000_000,
    "(" * 10_000 + "1" + ")" * 10_000,
    "[" * 10_000,
    "-" * 5_000 + "1",
    "yhat[t] - y[t]" + " + 0" * 400,
    "sum(x[k] for k in range(0, 10**9))",
    "sum(sum(sum(x[k] for k in range(0, 60)) for i in range(0, 60)) for t in range(0, 60))",
    "prod(h[k] for k in range(-10**12, 10**12))",
    "yhat[10**100]",
    "yhat[t" + "+1" * 500 + "]",
    "'string'",
    '"yhat"',
    "b'bytes'",
    "yhat[t] - y[t]  # comment",
    "yhat[t]; import os",
    "yhat[t]\nimport os",
    "@decorator",
    "async def f(): pass",
    "yield y",
    "y[t] := 1",
    "*y",
    "**kwargs",
    "y[t:]",
    "y[...]",
    "ŷ[t] - y[t]",
    "yhat[t] − y[t]",  # U+2212 minus
    "ｙhat[t]",
    "yhat[t]\u200b - y[t]",
    r"\input{/etc/passwd}",
    r"\write18{rm -rf /}",
    r"\immediate\write18{id}",
    r"\def\x{1} \x",
    r"\catcode`\^=12",
    r"\sum_{k=0}^{1000000000} x_k",
    r"\prod_{k=-100000}^{100000} h_k",
    r"\hat{y}_{t" + "+1" * 500 + "}",
    r"\frac{" * 5_000,
    "{" * 10_000,
    r"w_{hh}^{9^{9^{9}}}",
    r"\hat{y}_t - y_t \\ \newline \verb|x|",
    "$$" * 2_000,
    "\x00",
    "",
    "   ",
]


@pytest.mark.parametrize("expression", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_inputs_are_invalid_and_quick(expression: str) -> None:
    configs, context = hw5()
    GRADER.points_for(configs["q2_1"], context)  # points are drawn once per process, not per answer
    timings = []
    for _ in range(3):
        started = time.process_time()  # CPU time: the grader's own work, whatever else the machine runs
        result = GRADER.grade_raw_answer(configs["q2_1"], {"expression": expression}, context)
        timings.append(time.process_time() - started)
        assert result.verdict is Verdict.INVALID, (expression[:80], result.verdict, result.feedback)
        assert result.feedback
    # The bound (50 ms) on the fastest of three tries: a busy CI machine can stall any
    # single call, but no hostile input may take that long by itself.
    assert min(timings) < 0.05, f"{min(timings) * 1000:.1f} ms for {expression[:60]!r}"


def test_the_hostile_corpus_is_large() -> None:
    assert len(HOSTILE) >= 50


def test_the_size_bound_wins_over_a_wrong_name_and_the_first_wrong_name_is_named() -> None:
    # check_names counts the nodes in the walk that checks the names (no separate walk): a tree
    # over the bound is refused for its size even when a wrong name comes first in it.
    configs, context = hw5()
    too_big = "nosuch[t] + yhat[t] - y[t]" + " + 0" * 400
    result = GRADER.grade_raw_answer(configs["q2_1"], {"expression": too_big}, context)
    assert result.verdict is Verdict.INVALID
    assert "more than 400 parts" in result.feedback
    # Within the bound, the first wrong name in reading order is the one named.
    result = GRADER.grade_raw_answer(configs["q2_1"], {"expression": "first[t] + second(y[t])"}, context)
    assert "'first'" in result.feedback
    assert "second" not in result.feedback.split(".")[0]
