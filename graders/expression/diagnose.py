"""Comparing an answer with the reference at every point, and naming every mistake when it differs.

A wrong answer is searched for repairs, as a TA's margin notes would name them: each candidate
repair is data (a description quoting the answer's own text, a Diagnosis, the changed tree: see
repairs.py), and the search tries combinations breadth-first, fewest repairs first, up to
MAX_MISTAKES. Checks on the value alone (the sign or a constant factor of the whole, a transposed
whole) cost no evaluation and end every branch. The search is bounded by
`Limits.max_diagnosis_evaluations` and `Limits.max_diagnosis_steps`, so a hostile answer stays
cheap; when they run out, the feedback falls back to the first point where the answer differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from graders.expression.config import Diagnosis, ExpressionConfig
from graders.expression.errors import ExpressionError, LimitExceeded
from graders.expression.evaluate import Evaluation, PointBatch, evaluate
from graders.expression.functions import Array, value_shape
from graders.expression.limits import Limits, StepBudget
from graders.expression.repairs import Mistake, Repair, candidate_repairs
from graders.expression.syntax import (
    Expr,
)

# More mistakes than this in one answer is a different answer, not a slip to point out.
MAX_MISTAKES = 3
COUNT_WORDS = {2: "Two", 3: "Three"}
BOTH_OR_ALL = {2: "both", 3: "all three"}


@dataclass(frozen=True)
class Verdict:
    correct: bool
    diagnosis: Diagnosis | None  # the first of `mistakes`, or a shape named without a repair
    feedback: str
    mistakes: tuple[Mistake, ...] = ()

    def credit(self, partial_credit: Mapping[Diagnosis, float]) -> float:
        """1 if correct; else the product of each named mistake's partial credit (each one costs
        its share, so two mistakes worth 0.5 each earn 0.25, and any mistake without credit earns 0)."""
        if self.correct:
            return 1.0
        named = [mistake.diagnosis for mistake in self.mistakes]
        if not named and self.diagnosis is not None:
            named = [self.diagnosis]  # a wrong shape that no repair explains
        if not named:
            return 0.0
        fraction = 1.0
        for diagnosis in named:
            fraction *= partial_credit.get(diagnosis, 0.0)
        return fraction


def close_at_points(
    value: Array, expected: Array, evaluation: Evaluation, config: ExpressionConfig
) -> np.ndarray:
    """Per point: defined, and every component within rtol/atol."""
    size = expected.shape[-1]
    # np.isclose's test without its per-call Python overhead; where they differ (infinities) the
    # point is undefined, and the expected values are finite (points.py draws again otherwise).
    near = np.abs(value - expected) <= config.atol + config.rtol * np.abs(expected)
    return np.asarray(np.logical_and.reduce(near.reshape(-1, size), axis=0) & ~evaluation.undefined)


def describe_shape(shape: tuple[int, ...]) -> str:
    if not shape:
        return "a scalar"
    if len(shape) == 1:
        return f"a vector of {shape[0]}"
    return "a matrix of shape " + " x ".join(str(n) for n in shape)


def compare(expr: Expr, batch: PointBatch, config: ExpressionConfig, limits: Limits) -> Verdict:
    """The verdict on an answer; an evaluation error escapes only when no repair explains it."""
    due_shape = value_shape(batch.expected)
    try:
        evaluation: Evaluation | None = evaluate(expr, batch, config, limits)
    except LimitExceeded:
        raise
    except ExpressionError as error:
        # A shape clash may be a mistake a repair fixes (`a * b` where `a @ b` is due).
        mistakes = _search(_State(expr, (), frozenset(), None, -1), batch, config, limits)
        if mistakes is None:
            raise error from None
        named = _named(mistakes)
        return replace(named, feedback=f"{error.message} {named.feedback}")
    assert evaluation is not None
    value = evaluation.value
    given_shape = value_shape(value)
    close = close_at_points(value, batch.expected, evaluation, config) if given_shape == due_shape else None
    if close is not None and np.logical_and.reduce(close):  # close.all() without its Python wrapper
        return Verdict(True, None, "Correct.")
    root = _State(expr, (), frozenset(), evaluation, int(close.sum()) if close is not None else -1)
    mistakes = _search(root, batch, config, limits)
    if mistakes is not None:
        return _named(mistakes)
    if given_shape != due_shape:
        return Verdict(
            False,
            Diagnosis.SHAPE,
            f"Wrong shape: the answer is {describe_shape(given_shape)}, "
            f"but {describe_shape(due_shape)} is due.",
        )
    assert close is not None
    defined = ~evaluation.undefined
    if evaluation.reason is not None and not defined.all():
        return Verdict(False, None, f"The answer is undefined at some points: {evaluation.reason}.")
    point = int(np.argmin(close))
    at = ", ".join(f"{name} = {int(values[point])}" for name, values in batch.indices.items())
    given = _show(value[..., point])
    where = f"At {at} (with the other values drawn at random)" if at else "At a random point"
    if not config.show_expected:
        # The value due at a point is the answer key there: shown only where the author chose to.
        return Verdict(False, None, f"{where} the answer is {given}, which is not the value due.")
    return Verdict(
        False, None, f"{where} the answer is {given}, but {_show(batch.expected[..., point])} is due."
    )


def _named(mistakes: tuple[Mistake, ...]) -> Verdict:
    first = mistakes[0].diagnosis
    if len(mistakes) == 1:
        return Verdict(False, first, mistakes[0].alone, mistakes)
    count = len(mistakes)
    notes = "; ".join(f"({number}) {mistake.note}" for number, mistake in enumerate(mistakes, 1))
    return Verdict(
        False,
        first,
        f"{COUNT_WORDS[count]} mistakes: {notes}. "
        f"With {BOTH_OR_ALL[count]} repaired the answer would be right.",
        mistakes,
    )


def _show(value: Array) -> str:
    if value.ndim == 0:
        return f"{float(value):.6g}"
    return "[" + ", ".join(f"{float(v):.6g}" for v in value.reshape(-1)) + "]"


def _constant_factor(value: Array, expected: Array) -> float | None:
    flat_value, flat_expected = value.reshape(-1), expected.reshape(-1)
    usable = np.abs(flat_expected) > 1e-9
    if usable.sum() < 2:
        return None
    ratios = flat_value[usable] / flat_expected[usable]
    factor = float(np.median(ratios))
    if not np.isfinite(factor) or abs(factor) < 1e-12 or np.isclose(factor, 1.0) or np.isclose(factor, -1.0):
        return None
    return factor if np.allclose(ratios, factor, rtol=1e-6, atol=1e-12) else None


# --- mistakes of the whole value: found without evaluating anything again ----------------------


def _whole_mistake(evaluation: Evaluation, batch: PointBatch, config: ExpressionConfig) -> Mistake | None:
    """The transpose, the sign or a constant factor of the whole, if that alone makes it right."""
    value, expected = evaluation.value, batch.expected
    given_shape, due_shape = value_shape(value), value_shape(expected)
    if given_shape != due_shape:
        transposed = len(due_shape) == 2 and given_shape == due_shape[::-1]
        if transposed and close_at_points(np.swapaxes(value, 0, 1), expected, evaluation, config).all():
            return Mistake(
                Diagnosis.TRANSPOSE,
                "the whole is transposed",
                "The answer is the transpose of what is due.",
            )
        return None
    if evaluation.undefined.any():
        return None
    if close_at_points(-value, expected, evaluation, config).all():
        return Mistake(
            Diagnosis.SIGN,
            "the sign of the whole is wrong",
            "The sign is wrong: the answer is the negative of what is due.",
        )
    factor = _constant_factor(value, expected)
    if factor is not None:
        return Mistake(
            Diagnosis.FACTOR,
            f"the whole is off by a constant factor ({factor:.4g} times what is due)",
            f"Off by a constant factor: the answer is {factor:.4g} times what is due.",
        )
    return None


@dataclass(frozen=True)
class _State:
    tree: Expr
    repairs: tuple[Repair, ...]
    inserted: frozenset[int]  # ids of the parts repairs put in (kept alive by `repairs`)
    evaluation: Evaluation | None  # None: the tree raised an ExpressionError (a shape clash)
    points_right: int  # -1 where the shape is wrong


def _search(
    root: _State, batch: PointBatch, config: ExpressionConfig, limits: Limits
) -> tuple[Mistake, ...] | None:
    """The fewest repairs (at most MAX_MISTAKES) that make the answer right, breadth-first and
    within the evaluation and step budgets; None if there are none within them."""
    due_shape = value_shape(batch.expected)
    budget = StepBudget(limits.max_diagnosis_steps)
    evaluations_left = limits.max_diagnosis_evaluations
    seen = {_fingerprint(root.evaluation)}
    level = [root]
    for _depth in range(1, MAX_MISTAKES + 1):
        # Cheapest first: a state one repair short, with the whole's sign, factor or transpose.
        for state in level:
            if state.evaluation is not None:
                whole = _whole_mistake(state.evaluation, batch, config)
                if whole is not None:
                    return (*_ordered(state.repairs), whole)
        following: list[_State] = []
        # The states nearest to right go first, so that the budget is spent where it is likeliest to help.
        for state in sorted(level, key=lambda s: -s.points_right):
            shape_only = state.points_right < 0
            for repair in candidate_repairs(state.tree, state.inserted, config, shape_only):
                if shape_only and not repair.changes_shape:
                    continue  # a shape mistake needs a repair that changes a shape, whatever else it needs
                if evaluations_left <= 0:
                    return None
                evaluations_left -= 1
                try:
                    evaluation: Evaluation | None = evaluate(repair.tree, batch, config, limits, budget)
                except LimitExceeded:
                    return None  # the step budget is spent
                except ExpressionError:
                    evaluation = None
                fingerprint = _fingerprint(evaluation)
                if evaluation is not None and fingerprint in seen:
                    continue  # no change, or a state reached another way
                seen.add(fingerprint)
                repairs = (*state.repairs, repair)
                points_right = -1
                if evaluation is not None and value_shape(evaluation.value) == due_shape:
                    close = close_at_points(evaluation.value, batch.expected, evaluation, config)
                    if close.all():
                        return _ordered(repairs)
                    points_right = int(close.sum())
                inserted = state.inserted | {id(repair.inserted)}
                following.append(_State(repair.tree, repairs, inserted, evaluation, points_right))
        level = following
    return None


def _ordered(repairs: tuple[Repair, ...]) -> tuple[Mistake, ...]:
    return tuple(repair.mistake() for repair in sorted(repairs, key=lambda repair: repair.path))


def _fingerprint(evaluation: Evaluation | None) -> bytes:
    if evaluation is None:
        return b""
    value = np.round(evaluation.value, 9)
    return repr(value.shape).encode() + value.tobytes() + np.packbits(evaluation.undefined).tobytes()
