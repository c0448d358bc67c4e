"""Comparing an answer with the reference at every point, and naming the mistake when it differs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from graders.expression.config import Diagnosis, ExpressionConfig
from graders.expression.errors import ExpressionError, LimitExceeded
from graders.expression.evaluate import Evaluation, PointBatch, evaluate
from graders.expression.functions import Array, value_shape
from graders.expression.limits import Limits, StepBudget
from graders.expression.syntax import (
    Binary,
    Call,
    Expr,
    Indexed,
    Name,
    Negate,
    Number,
    Reduce,
    children,
    to_text,
)


@dataclass(frozen=True)
class Verdict:
    correct: bool
    diagnosis: Diagnosis | None
    feedback: str


def _close(value: Array, expected: Array, evaluation: Evaluation, config: ExpressionConfig) -> np.ndarray:
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
    evaluation = evaluate(expr, batch, config, limits)
    value, expected = evaluation.value, batch.expected
    given_shape, due_shape = value_shape(value), value_shape(expected)
    if given_shape != due_shape:
        if len(due_shape) == 2 and given_shape == due_shape[::-1]:
            transposed = np.swapaxes(value, 0, 1)
            if _close(transposed, expected, evaluation, config).all():
                return Verdict(False, Diagnosis.TRANSPOSE, "The answer is the transpose of what is due.")
        return Verdict(
            False,
            Diagnosis.SHAPE,
            f"Wrong shape: the answer is {describe_shape(given_shape)}, "
            f"but {describe_shape(due_shape)} is due.",
        )
    close = _close(value, expected, evaluation, config)
    if close.all():
        return Verdict(True, None, "Correct.")
    defined = ~evaluation.undefined
    if defined.all():
        if _close(-value, expected, evaluation, config).all():
            return Verdict(
                False, Diagnosis.SIGN, "The sign is wrong: the answer is the negative of what is due."
            )
        factor = _constant_factor(value, expected)
        if factor is not None:
            return Verdict(
                False,
                Diagnosis.FACTOR,
                f"Off by a constant factor: the answer is {factor:.4g} times what is due.",
            )
    index_fix = _index_fix(expr, batch, config, limits)
    if index_fix is not None:
        return Verdict(False, Diagnosis.INDEX, index_fix)
    if evaluation.reason is not None and not defined.all():
        return Verdict(False, None, f"The answer is undefined at some points: {evaluation.reason}.")
    point = int(np.argmin(close))
    at = ", ".join(f"{name} = {int(values[point])}" for name, values in batch.indices.items())
    given = _show(value[..., point])
    where = f"At {at} (with the other values drawn at random)" if at else "At a random point"
    if not config.show_expected:
        # The value due at a point is the answer key there: shown only where the author chose to.
        return Verdict(False, None, f"{where} the answer is {given}, which is not the value due.")
    return Verdict(False, None, f"{where} the answer is {given}, but {_show(expected[..., point])} is due.")


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


# --- index mistakes --------------------------------------------------------------------------


def _index_sites(expr: Expr, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Expr, str]]:
    """(path, index expression, symbol name) for every index written in the answer."""
    if isinstance(expr, Indexed):
        for position, index in enumerate(expr.indices):
            yield (*path, position), index, expr.name
    for position, child in enumerate(children(expr)):
        yield from _index_sites(child, (*path, position))


def _replace_at(expr: Expr, path: tuple[int, ...], new: Expr) -> Expr:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(expr, Indexed):
        indices = list(expr.indices)
        indices[head] = _replace_at(indices[head], rest, new)
        return replace(expr, indices=tuple(indices))
    if isinstance(expr, Call):
        args = list(expr.args)
        args[head] = _replace_at(args[head], rest, new)
        return replace(expr, args=tuple(args))
    if isinstance(expr, Binary):
        return (
            replace(expr, left=_replace_at(expr.left, rest, new))
            if head == 0
            else replace(expr, right=_replace_at(expr.right, rest, new))
        )
    if isinstance(expr, Negate):
        return replace(expr, operand=_replace_at(expr.operand, rest, new))
    assert isinstance(expr, Reduce)
    if head == 0:
        return replace(expr, start=_replace_at(expr.start, rest, new))
    if head == 1:
        return replace(expr, stop=_replace_at(expr.stop, rest, new))
    return replace(expr, body=_replace_at(expr.body, rest, new))


def _rename(expr: Expr, old: str, new: str) -> Expr:
    if isinstance(expr, Name):
        return Name(new) if expr.name == old else expr
    if isinstance(expr, Number):
        return expr
    if isinstance(expr, Indexed):
        return replace(expr, indices=tuple(_rename(index, old, new) for index in expr.indices))
    if isinstance(expr, Call):
        return replace(expr, args=tuple(_rename(arg, old, new) for arg in expr.args))
    if isinstance(expr, Binary):
        return replace(expr, left=_rename(expr.left, old, new), right=_rename(expr.right, old, new))
    if isinstance(expr, Negate):
        return replace(expr, operand=_rename(expr.operand, old, new))
    return expr  # an index expression holds no sums


def _index_candidates(index: Expr, names: list[str]) -> Iterator[Expr]:
    used = {node.name for node in _names_in(index)}
    for old in sorted(used):
        for new in names:
            if new != old:
                yield _rename(index, old, new)
    yield Binary("-", index, Number(1.0))
    yield Binary("+", index, Number(1.0))


def _names_in(expr: Expr) -> list[Name]:
    if isinstance(expr, Name):
        return [expr]
    return [name for child in children(expr) for name in _names_in(child)]


MAX_INDEX_TRIALS = 40


def _index_fix(expr: Expr, batch: PointBatch, config: ExpressionConfig, limits: Limits) -> str | None:
    """If changing one written index makes the answer right, say which: `h[t - 1]` → `h[i - 1]`."""
    names = list(config.index_names)
    budget = StepBudget(limits.max_diagnosis_steps)
    trials = 0
    for path, index, symbol in _index_sites(expr):
        for candidate in _index_candidates(index, names):
            trials += 1
            if trials > MAX_INDEX_TRIALS:
                return None
            changed = _replace_at(expr, path, candidate)
            try:
                evaluation = evaluate(changed, batch, config, limits, budget)
            except LimitExceeded:
                return None
            except ExpressionError:
                continue
            if value_shape(evaluation.value) != value_shape(batch.expected):
                continue
            if _close(evaluation.value, batch.expected, evaluation, config).all():
                return (
                    f"Check the index of {symbol}: {symbol}[{to_text(index)}] does not fit here "
                    f"(with {symbol}[{to_text(candidate)}] the answer would be right)."
                )
    return None
