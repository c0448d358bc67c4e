"""What a wrong formula's feedback may reveal: the student's value, and the value due only when the
question's author opts in (`show_expected`)."""

from __future__ import annotations

import re

import numpy as np

from graders import GradeResult, Verdict
from graders.expression import ExpressionConfig
from graders.expression.evaluate import evaluate
from graders.expression.limits import DEFAULT_LIMITS
from tests.graders.hw5_expressions import GRADER, hw5

# Wrong, and no named mistake fits: the feedback falls back to the first point where it differs.
UNNAMED_MISTAKE = "dot(w_yh, g_o[t]) * w_hh**(t-i) * prod(tanh(z[k]) for k in range(i+1, t+1))"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def _grade(config: ExpressionConfig, expression: str) -> GradeResult:
    _configs, context = hw5()
    return GRADER.grade_raw_answer(config, {"expression": expression}, context)


def _first_differing_point(config: ExpressionConfig, expression: str) -> tuple[float, float]:
    """(the answer's value, the value due) at the point the feedback is about."""
    _configs, context = hw5()
    reading = GRADER.read(config, expression)
    assert reading.expr is not None
    batch = GRADER.points_for(config, context)
    given = evaluate(reading.expr, batch, config, DEFAULT_LIMITS).value
    close = np.isclose(given, batch.expected, rtol=config.rtol, atol=config.atol)
    point = int(np.argmin(close))
    return float(given[point]), float(batch.expected[point])


def test_by_default_a_wrong_answer_is_told_its_value_but_not_the_value_due() -> None:
    configs, _context = hw5()
    config = configs["q2_2"]
    assert config.show_expected is False
    result = _grade(config, UNNAMED_MISTAKE)
    assert result.verdict is Verdict.INCORRECT
    assert result.details.get("diagnosis") is None
    given, due = _first_differing_point(config, UNNAMED_MISTAKE)
    shown = {float(number) for number in NUMBER.findall(result.feedback.split(" the answer is ", 1)[1])}
    assert np.isclose(given, float(f"{given:.6g}"))
    assert float(f"{given:.6g}") in shown
    assert float(f"{due:.6g}") not in shown, result.feedback
    assert "is due" not in result.feedback
    assert "which is not the value due" in result.feedback


def test_an_author_may_opt_in_to_showing_the_value_due() -> None:
    configs, _context = hw5()
    config = configs["q2_2"].model_copy(update={"show_expected": True})
    result = _grade(config, UNNAMED_MISTAKE)
    assert result.verdict is Verdict.INCORRECT
    given, due = _first_differing_point(config, UNNAMED_MISTAKE)
    assert result.feedback.endswith(f"the answer is {given:.6g}, but {due:.6g} is due.")


def test_show_expected_is_read_from_the_question_config() -> None:
    configs, _context = hw5()
    raw = configs["q2_2"].model_dump() | {"show_expected": True}
    assert GRADER.parse_config(raw).show_expected is True
    assert GRADER.parse_config(configs["q2_2"].model_dump()).show_expected is False
