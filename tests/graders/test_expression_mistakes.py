"""Every mistake named, as a TA's margin notes would: a bounded search for the fewest repairs that
together make a wrong answer right."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import pytest

from graders import GradeResult, GradingContext, Verdict
from graders.expression import Diagnosis, ExpressionConfig, ExpressionGrader, diagnose
from graders.expression.evaluate import evaluate
from graders.expression.limits import DEFAULT_LIMITS, Limits
from tests.graders.hw5_expressions import GRADER, HANDIN_LATEX, hw5

NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Wrong, and no repair within reach explains it (tanh where dpsi is due).
UNREPAIRABLE = "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(tanh(z[k]) for k in range(i+1, t+1))"


def grade(question: str, expression: str, config: ExpressionConfig | None = None) -> GradeResult:
    configs, context = hw5()
    return GRADER.grade_raw_answer(config or configs[question], {"expression": expression}, context)


def diagnoses(result: GradeResult) -> list[Any]:
    mistakes = result.details.get("mistakes")
    assert isinstance(mistakes, list)
    return [mistake["diagnosis"] for mistake in mistakes if isinstance(mistake, dict)]


def test_the_handins_q2_2_names_both_its_mistakes() -> None:
    result = grade("q2_2", HANDIN_LATEX["q2_2"])
    assert result.verdict is Verdict.INCORRECT
    assert result.feedback.startswith(
        "Two mistakes: (1) Wrong shape: g_o[t] * w_yh is an elementwise product"
    )
    assert "dot(g_o[t], w_yh)" in result.feedback
    # With k from 0 to t-i-1 the product's k-th factor is psi'(z_{t-k}), not psi'(z_k).
    assert "(2) Check the index of z: z[t] does not fit here (→ z[t - k])" in result.feedback
    assert result.feedback.endswith("With both repaired the answer would be right.")
    assert result.details["diagnosis"] == "shape"
    assert diagnoses(result) == ["shape", "index"]
    # Nothing of the key beyond the two repaired parts: no value, no other part of the reference.
    assert NUMBER.findall(result.feedback) == ["1", "2", "2"], result.feedback
    assert "i + 1" not in result.feedback


def test_the_named_repairs_together_make_the_handin_right() -> None:
    repaired = r"g_{ot}^\top w_{yh} \times w_{hh}^{t-i} \times \prod_{k=0}^{t-i-1} \psi'(z_{t-k})"
    assert grade("q2_2", repaired).verdict is Verdict.CORRECT
    one_repair = r"g_{ot}^\top w_{yh} \times w_{hh}^{t-i} \times \prod_{k=0}^{t-i-1} \psi'(z_t)"
    result = grade("q2_2", one_repair)
    assert result.feedback == (
        "Check the index of z: z[t] does not fit here (with z[t - k] the answer would be right)."
    )
    assert diagnoses(result) == ["index"]


def test_the_handins_q2_3_still_names_the_index_alone() -> None:
    result = grade("q2_3", HANDIN_LATEX["q2_3"])
    assert result.feedback == (
        "Check the index of h: h[t - 1] does not fit here (with h[i - 1] the answer would be right)."
    )
    assert result.details["diagnosis"] == "index"
    assert diagnoses(result) == ["index"]


@pytest.mark.parametrize(
    ("question", "expression", "named", "phrases"),
    [
        # The index, and the whole's sign (found on the value, without evaluating again).
        ("q2_1", r"y_{t-1} - \hat{y}_t", ["index", "sign"], ["y[t - 1] does not fit", "sign of the whole"]),
        ("q2_3", "-sum(g_h[i] * dpsi(z[i]) * h[i] for i in range(1, t+1))", ["index", "sign"], ["h[i - 1]"]),
        # One term's sign, and the index.
        ("q2_1", "yhat[t] + y[t-1]", ["sign", "index"], ["yhat[t] - y[t - 1]", "(→ y[t])"]),
        # Two indices.
        (
            "q2_3",
            "sum(g_h[i] * dpsi(z[t]) * h[t-1] for i in range(1, t+1))",
            ["index", "index"],
            ["z[i]", "h[i - 1]"],
        ),
        # A product's bound, and an index inside it.
        (
            "q2_2",
            r"w_{yh}^\top g_{o,t} w_{hh}^{t-i} \prod_{k=i}^{t} \psi'(z_{k-1})",
            ["index", "index"],
            ["k from i + 1 to t", "z[k]"],
        ),
    ],
)
def test_two_mistakes_are_named_as_two(
    question: str, expression: str, named: list[str], phrases: list[str]
) -> None:
    result = grade(question, expression)
    assert result.verdict is Verdict.INCORRECT
    assert result.feedback.startswith("Two mistakes: (1) ")
    assert "(2) " in result.feedback
    assert diagnoses(result) == named
    assert result.details["diagnosis"] == named[0]
    for phrase in phrases:
        assert phrase in result.feedback, result.feedback


def test_three_mistakes_are_named_as_three() -> None:
    result = grade("q2_2", "-g_o[t] * w_yh * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i, t+1))")
    assert result.feedback.startswith("Three mistakes: (1) Wrong shape")
    assert result.feedback.endswith("With all three repaired the answer would be right.")
    assert diagnoses(result) == ["shape", "index", "sign"]


def test_a_bound_off_by_one_is_named() -> None:
    result = grade("q2_2", "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i, t+1))")
    assert result.feedback == (
        "Check the bounds of the product over k: it runs from i to t "
        "(with k from i + 1 to t the answer would be right)."
    )
    assert result.details["diagnosis"] == "index"


def test_a_note_quotes_a_long_answer_only_around_the_mistake() -> None:
    padding = "0 * (" + " * ".join(["yhat[t]", "y[t]"] * 5) + ")"
    result = grade("q2_1", f"{padding} + yhat[t] + y[t]")
    assert result.feedback == "Check the sign of y[t] (with … - y[t] the answer would be right)."


def test_partial_credit_of_several_mistakes_is_the_product_of_their_fractions() -> None:
    configs, _context = hw5()
    both = configs["q2_1"].model_copy(update={"partial_credit": {Diagnosis.SIGN: 0.5, Diagnosis.INDEX: 0.6}})
    result = grade("q2_1", "y[t-1] - yhat[t]", both)
    assert result.verdict is Verdict.PARTIAL
    assert result.fraction == pytest.approx(0.3)
    sign_only = configs["q2_1"].model_copy(update={"partial_credit": {Diagnosis.SIGN: 0.5}})
    assert grade("q2_1", "y[t-1] - yhat[t]", sign_only).fraction == 0.0
    assert grade("q2_1", "y[t] - yhat[t]", sign_only).fraction == 0.5


def test_an_answer_no_repair_explains_gets_the_first_point_where_it_differs() -> None:
    result = grade("q2_2", UNREPAIRABLE)
    assert result.verdict is Verdict.INCORRECT
    assert result.feedback.startswith("At t = ")
    assert result.details["diagnosis"] is None
    assert "mistakes" not in result.details


def test_the_search_stops_at_its_budget() -> None:
    configs, context = hw5()
    config = configs["q2_2"]
    grader = ExpressionGrader()
    batch = grader.points_for(config, context)
    reading = grader.read(config, HANDIN_LATEX["q2_2"])
    assert reading.expr is not None
    assert len(diagnose.compare(reading.expr, batch, config, DEFAULT_LIMITS).mistakes) == 2
    # One evaluation finds the dot product, not the index as well: the shape is named as today.
    starved = diagnose.compare(reading.expr, batch, config, Limits(max_diagnosis_evaluations=1))
    assert starved.mistakes == ()
    assert starved.feedback == "Wrong shape: the answer is a vector of 2, but a scalar is due."
    steps = diagnose.compare(reading.expr, batch, config, Limits(max_diagnosis_steps=10))
    assert steps.mistakes == ()


# Wrong answers a search could spend long on: many indices, long chains, nested sums.
EXPENSIVE = [
    ("q2_1", "yhat[t] - y[t]" + " + yhat[t-1] - y[t-1]" * 30),
    ("q2_1", "yhat[t] - y[t]" + " + 2 * yhat[t]" * 60),
    ("q2_1", "g_o[t] * y[t] * yhat[t] * o[t]" + " + g_o[t] * y[t] * yhat[t] * o[t]" * 30),
    ("q2_2", "w_hh" + " * w_hh" * 150),
    ("q2_2", "-" * 150 + "w_hh * o[t]"),
    ("q2_2", UNREPAIRABLE),
    ("q2_3", "sum(g_h[i] * dpsi(z[i]) * h[t] for i in range(1, t+1))"),
    (
        "q2_3",
        "sum(sum(sum(h[i]*z[k]*h[t] for i in range(1, t+1)) for k in range(1, t+1)) for t in range(1, 4))",
    ),
]


@pytest.mark.parametrize(("question", "expression"), EXPENSIVE, ids=range(len(EXPENSIVE)))
def test_the_search_stays_fast_on_expensive_wrong_answers(
    question: str, expression: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluations = {"count": 0}

    def counted(*args: Any, **kwargs: Any) -> Any:
        evaluations["count"] += 1
        return evaluate(*args, **kwargs)

    monkeypatch.setattr("graders.expression.diagnose.evaluate", counted)
    grade(question, expression)  # points are drawn once per process, not per answer
    timings = []
    for _ in range(3):
        evaluations["count"] = 0
        # CPU time: the search's own work, whatever else the machine runs.
        started = time.process_time()
        result = grade(question, expression)
        timings.append(time.process_time() - started)
        assert result.verdict is Verdict.INCORRECT, result.feedback
        assert evaluations["count"] <= 1 + DEFAULT_LIMITS.max_diagnosis_evaluations
    # A blow-up guard, not a speed target (those are measured in bench/): the search is bounded by
    # the evaluation count above; 1 s of CPU catches an exponential search whatever else the
    # process's threads (a spare sandbox's reader, a server) use meanwhile. 0.05 s was flaky in CI.
    assert min(timings) < 1.0, f"{min(timings) * 1000:.1f} ms for {expression[:60]!r}"


def product_point(rng: np.random.Generator, indices: dict[str, int]) -> tuple[dict[str, Any], Any]:
    w = rng.normal(size=(2, 3))
    x = rng.normal(size=3)
    return {"W": w, "x": x}, w @ x


def test_a_shape_clash_a_repair_explains_is_named() -> None:
    config = ExpressionConfig(
        reference="product",
        symbols=[{"name": "W", "shape": [2, 3]}, {"name": "x", "shape": [3]}],
        functions=["transpose"],
        points=8,
    )
    result = ExpressionGrader().grade_raw_answer(
        config, {"expression": "W * x"}, GradingContext(0, {"product": product_point})
    )
    # The shapes are known when the answer is read: the mismatch is named there, with the fix.
    assert result.verdict is Verdict.INCORRECT
    assert result.feedback.startswith("W (2 x 3) and x (vector of 3) cannot be multiplied elementwise")
    assert "for their matrix product write @" in result.feedback
    assert diagnoses(result) == ["shape"]
