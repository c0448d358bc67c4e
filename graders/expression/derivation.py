"""Checking a derivation `a = b = c` step by step, at the same points as its answer.

Every side that can be read is evaluated once (all sides together spend from one budget); each
step `k -> k+1` holds when both sides have the same shape and agree at every point within the
question's tolerances. The feedback names the first step that is not known to hold, with the
values of the student's two sides at a point where they differ: both are the student's own, so
nothing of the answer key is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graders._result import JSONValue
from graders.expression.config import DerivationConfig, ExpressionConfig
from graders.expression.diagnose import close_at_points, describe_shape
from graders.expression.errors import ExpressionError, LimitExceeded
from graders.expression.evaluate import Evaluation, PointBatch, evaluate
from graders.expression.functions import Array, value_shape
from graders.expression.limits import Limits, StepBudget
from graders.expression.syntax import Side, to_text


@dataclass(frozen=True, slots=True)
class Step:
    """Side `source` = side `target` (numbered from 1, as the student wrote them)."""

    source: int
    target: int
    holds: bool | None  # None: could not be checked (a side unreadable, or the budget spent)
    # Why it does not hold (a clause), or why it was not checked (sentences).
    reason: str | None = None
    # A step between two sides read the same way rewrites nothing and earns no credit.
    counted: bool = True

    def describe(self) -> str:
        if self.holds is None:
            return f"Step {self.source} -> {self.target} was not checked. {self.reason}"
        return f"Step {self.source} -> {self.target} does not hold: {self.reason}"

    def to_json(self) -> dict[str, JSONValue]:
        shown: dict[str, JSONValue] = {"from": self.source, "to": self.target, "holds": self.holds}
        if self.reason is not None:
            shown["reason"] = self.reason
        if not self.counted:
            shown["counted"] = False
        return shown


@dataclass(frozen=True)
class DerivationCheck:
    steps: tuple[Step, ...]
    # The first side that could be evaluated has the value due: the chain starts from the right
    # quantity, so its steps can earn credit (a chain of true steps from a wrong start earns none).
    anchored: bool

    @property
    def gap(self) -> Step | None:
        """The first step not known to hold."""
        return next((step for step in self.steps if step.holds is not True), None)

    def step_fraction(self, settings: DerivationConfig, final_fraction: float) -> float:
        counted = [step for step in self.steps if step.counted]
        if not counted and settings.min_steps == 0:
            return final_fraction  # no steps asked for, none written: the answer's value alone
        if not self.anchored:
            return 0.0
        held = sum(1 for step in counted if step.holds is True)
        return held / max(len(counted), settings.min_steps)

    def fraction(self, settings: DerivationConfig, final_fraction: float) -> float:
        """The score: the last side's alone unless the question grades the steps."""
        if not settings.graded:
            return final_fraction
        weight = settings.step_weight
        return (1.0 - weight) * final_fraction + weight * self.step_fraction(settings, final_fraction)

    def feedback(self, answer_feedback: str, correct: bool) -> str:
        gap = self.gap
        if gap is None:
            if not self.steps:
                return answer_feedback
            if correct:
                return f"{answer_feedback} Every step of the derivation holds."
            # A true chain ending in a wrong value started from a wrong one.
            return (
                f"{answer_feedback} Every step of the derivation holds, so its first side is already wrong."
            )
        if correct and gap.holds is None:
            return f"{answer_feedback} {gap.describe()}"
        if correct:
            return f"The final answer is correct, but the derivation has a gap. {gap.describe()}"
        return f"{answer_feedback} {gap.describe()}"

    def details(self) -> list[JSONValue]:
        return [step.to_json() for step in self.steps]


TOO_MUCH_WORK = "The derivation takes too much work to check."


@dataclass(frozen=True)
class _Evaluated:
    evaluation: Evaluation | None
    problem: str | None = None  # why the side has no value
    # The side is read but has no value (shapes that do not fit): its steps do not hold. Otherwise
    # (unreadable, or the budget spent) they are not checked.
    broken: bool = False


def check_derivation(
    sides: Sequence[Side], batch: PointBatch, config: ExpressionConfig, limits: Limits
) -> DerivationCheck:
    """Check each step `k -> k+1` of a derivation at the points of `batch`.

    A first side that cannot be read against the declarations names the quantity derived
    (`\\frac{\\partial J}{\\partial w}`, `dJ/dw`): it is no step. An unreadable later side leaves its
    two steps unchecked.
    """
    first = 1 if sides and sides[0].expr is None else 0
    budget = StepBudget(limits.max_derivation_steps)
    values = [_evaluate(side, batch, config, limits, budget) for side in sides[first:]]
    steps = []
    for offset in range(len(values) - 1):
        number = first + offset + 1  # side numbers count from 1
        left_side, right_side = sides[number - 1], sides[number]
        same = (
            left_side.expr is not None
            and right_side.expr is not None
            and to_text(left_side.expr) == to_text(right_side.expr)
        )
        holds, reason = _compare(values[offset], values[offset + 1], number, batch, config)
        steps.append(Step(number, number + 1, holds, reason, counted=not same))
    anchored = bool(values) and _has_value_due(values[0], batch, config)
    return DerivationCheck(tuple(steps), anchored)


def _evaluate(
    side: Side, batch: PointBatch, config: ExpressionConfig, limits: Limits, budget: StepBudget
) -> _Evaluated:
    if side.expr is None:
        assert side.error is not None
        return _Evaluated(None, side.error.message)
    if budget.remaining <= 0:
        return _Evaluated(None, TOO_MUCH_WORK)
    try:
        return _Evaluated(evaluate(side.expr, batch, config, limits, budget), None)
    except LimitExceeded:
        # One budget for all sides: a costly side leaves the rest unchecked, never the grade slow.
        return _Evaluated(None, TOO_MUCH_WORK)
    except ExpressionError as error:
        return _Evaluated(None, error.message, broken=True)


def _compare(
    left: _Evaluated, right: _Evaluated, source: int, batch: PointBatch, config: ExpressionConfig
) -> tuple[bool | None, str | None]:
    left_evaluation, right_evaluation = left.evaluation, right.evaluation
    for number, side in ((source, left), (source + 1, right)):
        if side.evaluation is None:
            if side.broken:
                return False, f"side {number} cannot be evaluated: {side.problem}"
            return None, side.problem
    assert left_evaluation is not None
    assert right_evaluation is not None
    left_value, right_value = left_evaluation.value, right_evaluation.value
    left_shape, right_shape = value_shape(left_value), value_shape(right_value)
    if left_shape != right_shape:
        return False, (
            f"the left side is {describe_shape(left_shape)} and the right side {describe_shape(right_shape)}."
        )
    for where, evaluation in (("left", left_evaluation), ("right", right_evaluation)):
        if evaluation.undefined.any():
            return False, f"the {where} side is undefined at some points: {evaluation.reason}."
    close = close_at_points(right_value, left_value, right_evaluation, config)
    if close.all():
        return True, None
    point = int(np.argmin(close))
    at = ", ".join(f"{name} = {int(values[point])}" for name, values in batch.indices.items())
    where = f"at {at} (other values drawn at random)" if at else "at a random point"
    return False, (
        f"{where} the left side is {_show(left_value[..., point])} "
        f"and the right side {_show(right_value[..., point])}."
    )


def _has_value_due(side: _Evaluated, batch: PointBatch, config: ExpressionConfig) -> bool:
    if side.evaluation is None or value_shape(side.evaluation.value) != value_shape(batch.expected):
        return False
    return bool(close_at_points(side.evaluation.value, batch.expected, side.evaluation, config).all())


def _show(value: Array) -> str:
    if value.ndim == 0:
        return f"{float(value):.6g}"
    return "[" + ", ".join(f"{float(v):.6g}" for v in value.reshape(-1)) + "]"
