"""Derivations `a = b = c`: graded on the last side, every step checked at the same points, and
optionally the steps graded (ExpressionConfig.derivation)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from graders import GradeResult, Verdict
from graders.expression import ExpressionConfig, ExpressionSyntaxError, parse_latex_steps, parse_text_steps
from graders.expression.evaluate import UndeclaredName, evaluate
from graders.expression.limits import DEFAULT_LIMITS
from service.assignments.material import MaterialError, read_material
from tests.conftest import HW5_FOLDER
from tests.graders.hw5_expressions import GRADER, REFERENCE_LATEX, REFERENCE_TEXT, hw5

SUM_Q2_4 = r"\sum_{t=1}^3 gw_{hh,t}"
EXPANDED_Q2_4 = r"gw_{hh,1} + gw_{hh,2} + gw_{hh,3}"
MISSING_TERM_Q2_4 = r"gw_{hh,1} + gw_{hh,2}"
# q2_2 with the product starting one factor early: wrong wherever i < t.
WRONG_PRODUCT_Q2_2 = "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(dpsi(z[k]) for k in range(i, t+1))"
STEP = re.compile(
    r"Step (\d+) -> (\d+) does not hold: at (.*?)the left side is (\S+) and the right side (\S+)\.$"
)


def config(question: str, **derivation: Any) -> ExpressionConfig:
    configs, _context = hw5()
    if not derivation:
        return configs[question]
    return configs[question].model_copy(
        update={"derivation": configs[question].derivation.model_validate(derivation)}
    )


def grade(question: str, expression: str, answer_format: str | None = None, **derivation: Any) -> GradeResult:
    _configs, context = hw5()
    answer: dict[str, str] = {"expression": expression}
    if answer_format is not None:
        answer["format"] = answer_format
    return GRADER.grade_raw_answer(config(question, **derivation), answer, context)


def side_value(question: str, expression: str, point: int) -> float:
    _configs, context = hw5()
    reading = GRADER.read(config(question), expression, "latex")
    assert reading.expr is not None, reading.error
    batch = GRADER.points_for(config(question), context)
    return float(evaluate(reading.expr, batch, config(question), DEFAULT_LIMITS).value[..., point])


def steps(result: GradeResult) -> list[tuple[object, object, object]]:
    """(from, to, holds) of each step in the details."""
    shown = result.details["steps"]
    assert isinstance(shown, list)
    return [(step["from"], step["to"], step["holds"]) for step in shown if isinstance(step, dict)]


# --- every step checked, the answer graded on its last side --------------------------------------


def test_a_correct_derivation_is_correct_and_every_step_holds() -> None:
    result = grade("q2_4", f"{SUM_Q2_4} = {EXPANDED_Q2_4}")
    assert result.verdict is Verdict.CORRECT
    assert result.details["steps"] == [{"from": 1, "to": 2, "holds": True}]
    assert "Every step of the derivation holds" in result.feedback


def test_a_longer_derivation_in_text_and_in_latex() -> None:
    text = (
        "sum(g_h[i] * dpsi(z[i]) * h[i-1] for i in range(1, t+1))"
        " = sum(h[i-1] * (g_h[i] * dpsi(z[i])) for i in range(1, t+1))"
        f" = {REFERENCE_TEXT['q2_3']}"
    )
    result = grade("q2_3", text, "text")
    assert result.verdict is Verdict.CORRECT, result.feedback
    assert steps(result) == [(1, 2, True), (2, 3, True)]
    reordered = r"w_{hh}^{t-i} (w_{yh}^\top g_{o,t}) \prod_{k=i+1}^{t} \psi'(z_k)"
    latex = f"{REFERENCE_LATEX['q2_2']} = {reordered}"
    assert grade("q2_2", latex).verdict is Verdict.CORRECT


def test_a_broken_middle_step_is_named_with_the_students_own_values() -> None:
    answer = f"{SUM_Q2_4} = {MISSING_TERM_Q2_4} = {EXPANDED_Q2_4}"
    result = grade("q2_4", answer)
    # The final value is right, so the answer is: the gap is named, not scored (by default).
    assert result.verdict is Verdict.CORRECT
    assert result.feedback.startswith("The final answer is correct, but the derivation has a gap. ")
    match = STEP.search(result.feedback)
    assert match is not None, result.feedback
    assert (match[1], match[2], match[3]) == ("1", "2", "a random point ")
    assert steps(result) == [(1, 2, False), (2, 3, False)]
    # The values shown are the two sides' own, at one of the points.
    batch = GRADER.points_for(config("q2_4"), hw5()[1])
    left = [side_value("q2_4", SUM_Q2_4, point) for point in range(batch.size)]
    right = [side_value("q2_4", MISSING_TERM_Q2_4, point) for point in range(batch.size)]
    shown = (float(match[4]), float(match[5]))
    assert any(np.allclose(shown, (a, b), rtol=1e-5) for a, b in zip(left, right, strict=True))


def test_the_failing_step_names_the_index_values_of_the_point() -> None:
    answer = f"{REFERENCE_TEXT['q2_2']} = {WRONG_PRODUCT_Q2_2} = {REFERENCE_TEXT['q2_2']}"
    result = grade("q2_2", answer, "text")
    assert result.verdict is Verdict.CORRECT
    match = STEP.search(result.feedback)
    assert match is not None, result.feedback
    assert re.fullmatch(r"t = \d, i = \d \(other values drawn at random\) ", match[3])


def test_a_wrong_last_side_is_incorrect_and_the_step_into_it_is_named() -> None:
    result = grade("q2_4", f"{SUM_Q2_4} = {EXPANDED_Q2_4} = {MISSING_TERM_Q2_4}")
    assert result.verdict is Verdict.INCORRECT
    assert "Step 2 -> 3 does not hold" in result.feedback
    assert "Step 1 -> 2" not in result.feedback
    assert steps(result) == [(1, 2, True), (2, 3, False)]


def test_a_chain_of_true_steps_to_a_wrong_value_says_the_start_is_wrong() -> None:
    result = grade("q2_4", f"{MISSING_TERM_Q2_4} = gw_{{hh,2}} + gw_{{hh,1}}", "latex")
    assert result.verdict is Verdict.INCORRECT
    assert "Every step of the derivation holds, so its first side is already wrong." in result.feedback


def test_a_step_between_sides_of_different_shapes_does_not_hold() -> None:
    result = grade("q2_1", r"\hat{y}_t - y_t = \hat{y}_{t,1} - y_{t,1} = \hat{y}_t - y_t")
    assert result.verdict is Verdict.CORRECT
    assert (
        "Step 1 -> 2 does not hold: the left side is a vector of 2 and the right side a scalar."
        in result.feedback
    )


def test_a_first_side_naming_the_quantity_is_no_step() -> None:
    latex = grade("q2_1", r"\frac{\partial J_t}{\partial o_t} = -(y_t - \hat{y}_t) = \hat{y}_t - y_t")
    assert latex.verdict is Verdict.CORRECT
    assert latex.details["steps"] == [{"from": 2, "to": 3, "holds": True}]
    text = grade("q2_1", "dJ = yhat[t] - y[t]", "text")
    assert text.verdict is Verdict.CORRECT
    assert text.details["steps"] == []
    assert text.feedback == "Correct."


def test_an_unreadable_middle_side_leaves_its_steps_unchecked_not_the_answer_invalid() -> None:
    result = grade("q2_1", "yhat[t] - y[t] = foo[t] = yhat[t] - y[t]", "text")
    assert result.verdict is Verdict.CORRECT
    assert "Step 1 -> 2 was not checked. In side 2 of the derivation: Unknown symbol 'foo'" in result.feedback
    assert steps(result) == [(1, 2, None), (2, 3, None)]


# --- the sides as syntax trees, and errors placed in the right side ----------------------------


def test_both_parsers_give_every_side() -> None:
    assert len(parse_text_steps("yhat[t] - y[t] = -(y[t] - yhat[t]) = yhat[t] + -y[t]")) == 3
    sides = parse_latex_steps(f"{SUM_Q2_4} = {MISSING_TERM_Q2_4} = {EXPANDED_Q2_4}", config("q2_4"))
    assert len(sides) == 3
    assert sides[1] != sides[2]


def test_errors_point_into_the_side_they_are_in() -> None:
    answer = "yhat[t] - y[t] = y[t] +* 1 = yhat[t]"
    with pytest.raises(ExpressionSyntaxError) as syntax:
        parse_text_steps(answer)
    assert syntax.value.message.startswith("In side 2 of the derivation: ")
    assert syntax.value.position == answer.index("*")
    latex = r"\hat{y}_t - y_t = q_t = \hat{y}_t - y_t"
    with pytest.raises(UndeclaredName) as unknown:
        parse_latex_steps(latex, config("q2_1"))
    assert unknown.value.message.startswith("In side 2 of the derivation: Unknown symbol q_{t}")
    assert unknown.value.position == latex.index("=") + 1
    # Through the grader: an ill-formed side makes the answer invalid, at its place.
    result = grade("q2_1", answer, "text")
    assert result.verdict is Verdict.INVALID
    assert f"(at position {answer.index('*') + 1})" in result.feedback
    # A last side with an unknown name is invalid as before, its position in the last side.
    last = grade("q2_1", r"\hat{y}_t - y_t = \hat{y}_t - p_t")
    assert last.verdict is Verdict.INVALID
    assert "Unknown symbol p_{t}" in last.feedback


# --- graded steps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "fraction"),
    [
        # Every step holds and the answer is right.
        (f"{SUM_Q2_4} = {EXPANDED_Q2_4}", 1.0),
        # Right answer, a broken step into and out of side 2: the steps earn nothing.
        (f"{SUM_Q2_4} = {MISSING_TERM_Q2_4} = {EXPANDED_Q2_4}", 0.5),
        # Right start, one step of three broken, the later steps true from there: 2 of 3 steps.
        (
            f"{SUM_Q2_4} = {EXPANDED_Q2_4} = {MISSING_TERM_Q2_4} = gw_{{hh,2}} + gw_{{hh,1}}",
            0.5 * 2 / 3,
        ),
        # True steps from a wrong start earn nothing.
        (f"{MISSING_TERM_Q2_4} = gw_{{hh,2}} + gw_{{hh,1}}", 0.0),
        # No steps written: the step share is missing (min_steps = 1).
        (SUM_Q2_4, 0.5),
        # A side repeated verbatim is no step.
        (f"{SUM_Q2_4} = {SUM_Q2_4} = {SUM_Q2_4} = {MISSING_TERM_Q2_4}", 0.0),
    ],
)
def test_graded_steps_earn_partial_credit(answer: str, fraction: float) -> None:
    result = grade("q2_4", answer, "latex", graded=True, step_weight=0.5)
    assert result.fraction == pytest.approx(fraction), result.feedback


def test_graded_steps_with_a_weight_and_no_minimum() -> None:
    assert grade("q2_4", SUM_Q2_4, graded=True, step_weight=0.3, min_steps=0).fraction == 1.0
    broken = grade(
        "q2_4", f"{SUM_Q2_4} = {MISSING_TERM_Q2_4} = {EXPANDED_Q2_4}", graded=True, step_weight=0.3
    )
    assert broken.verdict is Verdict.PARTIAL
    assert broken.fraction == pytest.approx(0.7)
    # Ungraded, the same answer is correct: the gap is in the feedback only.
    assert grade("q2_4", f"{SUM_Q2_4} = {MISSING_TERM_Q2_4} = {EXPANDED_Q2_4}").fraction == 1.0


@pytest.mark.parametrize(
    "derivation",
    [
        {"step_weight": 0.3},  # without graded = true it would do nothing
        {"graded": True, "step_weight": 1.5},
        {"graded": True, "step_weight": 0.0},
        {"graded": True, "min_steps": 99},
        {"graded": True, "weight": 0.5},
    ],
)
def test_the_derivation_settings_are_validated(derivation: dict[str, Any]) -> None:
    raw = config("q2_4").model_dump() | {"derivation": derivation}
    with pytest.raises(ValidationError):
        GRADER.parse_config(raw)


def test_the_derivation_settings_survive_a_round_trip() -> None:
    graded = config("q2_4", graded=True, step_weight=0.25, min_steps=2)
    assert GRADER.parse_config(graded.model_dump()) == graded
    assert GRADER.parse_config(config("q2_4").model_dump()).derivation.graded is False


def _material_with(tmp_path: Path, derivation: str) -> Path:
    folder = tmp_path / "hw5"
    shutil.copytree(HW5_FOLDER, folder)
    toml = folder / "assignment.toml"
    text = toml.read_text(encoding="utf-8")
    anchor = 'reference = "q2_4_point"\n'
    assert anchor in text
    toml.write_text(text.replace(anchor, anchor + f"derivation = {derivation}\n"), encoding="utf-8")
    return folder


def test_the_settings_are_checked_when_the_material_is_loaded(tmp_path: Path) -> None:
    good = read_material(_material_with(tmp_path / "good", "{ graded = true, step_weight = 0.4 }"))
    q2_4 = next(question for question in good.material.questions if question.id == "q2_4")
    assert ExpressionConfig.model_validate(q2_4.config).derivation.step_weight == 0.4
    with pytest.raises(MaterialError, match="step_weight"):
        read_material(_material_with(tmp_path / "bad", "{ graded = true, step_weight = 2 }"))


# --- bounds ------------------------------------------------------------------------------------

HOSTILE_CHAINS = [
    "=" * 1_500,
    "y[t]=" * 300 + "y[t]",
    r"\hat{y}_t=" * 150 + r"\hat{y}_t",
    "1=" * 900 + "1",
    "(" + "=" * 30 + ")",
]


@pytest.mark.parametrize("expression", HOSTILE_CHAINS, ids=range(len(HOSTILE_CHAINS)))
def test_hostile_chains_are_invalid_and_quick(expression: str) -> None:
    _configs, context = hw5()
    GRADER.points_for(config("q2_1"), context)
    timings = []
    for _ in range(3):
        started = time.process_time()
        result = grade("q2_1", expression)
        timings.append(time.process_time() - started)
        assert result.verdict is Verdict.INVALID, (expression[:60], result.feedback)
        assert result.feedback
    assert min(timings) < 0.05, f"{min(timings) * 1000:.1f} ms"


def test_too_many_sides_are_refused_with_a_clear_message() -> None:
    result = grade("q2_1", " = ".join(["yhat[t] - y[t]"] * 13), "text")
    assert result.verdict is Verdict.INVALID
    assert result.feedback.startswith("The derivation has more than 12 sides; write at most 11 steps.")
    assert grade("q2_1", " = ".join(["yhat[t] - y[t]"] * 12), "text").verdict is Verdict.CORRECT


def test_costly_sides_spend_one_budget_and_stay_quick() -> None:
    heavy = "sum(sum(sum(z[1] for i in range(1, 60)) for k in range(1, 60)) for t in range(1, 60))"
    answer = " + 0 = ".join([heavy] * 11) + " = yhat[t] - y[t]"
    timings = []
    for _ in range(3):
        started = time.process_time()
        result = grade("q2_1", answer, "text")
        timings.append(time.process_time() - started)
    assert result.verdict is Verdict.CORRECT  # the answer itself is read and graded
    assert "was not checked. The derivation takes too much work to check." in result.feedback
    assert min(timings) < 0.05, f"{min(timings) * 1000:.1f} ms"
