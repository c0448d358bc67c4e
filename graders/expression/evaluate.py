"""Evaluating a syntax tree at a batch of points at once (numpy, float64, batch axis last).

Each node is computed once for all points; index expressions are per point, so `h[t-1]` gathers a
different time step at each point, and sum/prod loop over the union of their per-point ranges
with the terms outside a point's own range masked out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from graders.expression.config import ExpressionConfig, SymbolDeclaration
from graders.expression.errors import ExpressionError, LimitExceeded
from graders.expression.functions import FUNCTIONS, Array, ShapeError, matmul, value_shape
from graders.expression.limits import DEFAULT_LIMITS, Limits, StepBudget
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
class PointBatch:
    """P points: index values, symbol values and the reference value at each, stacked last."""

    size: int
    indices: Mapping[str, Array]  # (P,) each
    symbols: Mapping[str, Array]  # (*shape, P), or (length, *shape, P) for sequences
    expected: Array  # (*shape, P)


class UndeclaredName(ExpressionError):
    pass


def check_names(
    expr: Expr, config: ExpressionConfig, limits: Limits = DEFAULT_LIMITS, max_nodes: int | None = None
) -> None:
    """Every name must be declared, or bound by a sum or product around it, and used the way it is
    declared; raises UndeclaredName (LimitExceeded for too many bound variables).

    With `max_nodes`, a tree of more nodes raises LimitExceeded before any of those: the one walk
    counts the nodes too, so the first error it meets is kept until the count is known.
    """
    symbols, functions = _declared(config)
    bound_anywhere: set[str] = set()
    first: ExpressionError | None = None
    count = 0
    # (node, the variables bound around it): a bound name is visible only in its body.
    stack: list[tuple[Expr, frozenset[str]]] = [(expr, frozenset())]
    pop, push = stack.pop, stack.append
    while stack:
        node, bound = pop()
        count += 1
        kind = type(node)  # the node classes are final: a type test is an isinstance test
        if kind is Binary:
            push((node.right, bound))  # type: ignore[union-attr]
            push((node.left, bound))  # type: ignore[union-attr]
            continue
        if kind is Negate:
            push((node.operand, bound))  # type: ignore[union-attr]
            continue
        if kind is Number:
            continue
        if first is None:
            first = _name_error(node, bound, config, limits, symbols, functions, bound_anywhere)
            if first is not None and max_nodes is None:
                break
        if kind is Reduce:
            assert isinstance(node, Reduce)
            push((node.body, bound | {node.variable}))
            push((node.stop, bound))
            push((node.start, bound))
        elif kind is Indexed or kind is Call:
            for child in reversed(children(node)):
                push((child, bound))
    if max_nodes is not None and count > max_nodes:
        raise LimitExceeded(f"The answer has more than {max_nodes} parts.")
    if first is not None:
        raise first


def _name_error(
    node: Expr,
    bound: frozenset[str],
    config: ExpressionConfig,
    limits: Limits,
    symbols: Mapping[str, SymbolDeclaration],
    functions: frozenset[str],
    bound_anywhere: set[str],
) -> ExpressionError | None:
    """What is wrong with the names of one Name, Indexed, Call or Reduce node (a Reduce's variable
    is added to `bound_anywhere`)."""
    if isinstance(node, Name):
        symbol = symbols.get(node.name)
        if symbol is not None and symbol.sequence:
            return UndeclaredName(f"{node.name} needs an index, e.g. {node.name}[t].")
        if symbol is None and node.name not in bound and node.name not in config.index_names:
            if node.name in functions:
                return UndeclaredName(f"{node.name} is a function: call it, e.g. {node.name}(...).")
            return UndeclaredName(_unknown(node.name, config, functions))
    elif isinstance(node, Indexed):
        symbol = symbols.get(node.name)
        if symbol is None:
            return UndeclaredName(_unknown(node.name, config, functions))
        most = int(symbol.sequence) + len(symbol.shape)
        if len(node.indices) > most:
            return UndeclaredName(f"{node.name} takes at most {most} index(es), got {len(node.indices)}.")
    elif isinstance(node, Call):
        if node.function not in functions:
            return UndeclaredName(
                f"Unknown function {node.function!r}. Allowed functions: {', '.join(sorted(functions))}."
            )
        arity = FUNCTIONS[node.function].arity
        if len(node.args) != arity:
            return UndeclaredName(f"{node.function} takes {arity} argument(s), got {len(node.args)}.")
    elif isinstance(node, Reduce):
        variable = node.variable
        if variable in symbols or variable in functions:
            what = "symbol" if variable in symbols else "function"
            return UndeclaredName(
                f"{variable!r} is a declared {what}; a {node.kind} cannot bind it. Use another letter, "
                "e.g. j."
            )
        bound_anywhere.add(variable)
        if len(bound_anywhere) > limits.max_bound_variables:
            return LimitExceeded(
                f"The answer binds more than {limits.max_bound_variables} summation variables."
            )
    return None


def declared_symbols(config: ExpressionConfig) -> Mapping[str, SymbolDeclaration]:
    """The question's symbols by name (one table per config; not to be changed)."""
    return _declared(config)[0]


# Keyed by the config object, as configs are immutable and reused per question.
_DECLARED: dict[int, tuple[ExpressionConfig, dict[str, SymbolDeclaration], frozenset[str]]] = {}


def _declared(config: ExpressionConfig) -> tuple[dict[str, SymbolDeclaration], frozenset[str]]:
    """The question's symbols by name and its functions, listed once per config."""
    entry = _DECLARED.get(id(config))
    if entry is not None and entry[0] is config:
        return entry[1], entry[2]
    symbols = {symbol.name: symbol for symbol in config.symbols}
    functions = frozenset(config.functions)
    if len(_DECLARED) > 256:
        _DECLARED.clear()
    _DECLARED[id(config)] = (config, symbols, functions)
    return symbols, functions


def _unknown(name: str, config: ExpressionConfig, functions: frozenset[str]) -> str:
    allowed = sorted([symbol.name for symbol in config.symbols] + list(config.index_names))
    return (
        f"Unknown symbol {name!r}. Allowed symbols: {', '.join(allowed)}; "
        f"functions: {', '.join(sorted(functions))}."
    )


@dataclass
class Evaluation:
    """The value of an answer at every point, and the points where it is undefined."""

    value: Array
    undefined: np.ndarray  # (P,) bool: an index out of range, or a non-finite result
    reason: str | None = None


@dataclass
class _State:
    batch: PointBatch
    config: ExpressionConfig
    limits: Limits
    budget: StepBudget
    declarations: dict[str, SymbolDeclaration] = field(default_factory=dict)
    points: np.ndarray | None = None  # 0..P-1, for gathering one element per point
    bound: dict[str, Array] = field(default_factory=dict)
    # The value of each bound variable, the same at every point: a float for a cheap index.
    constants: dict[str, float] = field(default_factory=dict)
    active: np.ndarray | None = None
    undefined: np.ndarray | None = None
    reason: str | None = None


def evaluate(
    expr: Expr, batch: PointBatch, config: ExpressionConfig, limits: Limits, budget: StepBudget | None = None
) -> Evaluation:
    state = _State(batch, config, limits, budget or StepBudget(limits.max_steps))
    state.declarations = _declared(config)[0]
    state.points = np.arange(batch.size)
    state.active = np.empty(batch.size, dtype=bool)
    state.active.fill(True)  # np.ones without its Python-level wrapper
    state.undefined = np.zeros(batch.size, dtype=bool)
    with np.errstate(all="ignore"):
        try:
            value = _eval(expr, state)
        except ShapeError as error:
            raise ExpressionError(f"The shapes do not fit: {error}.") from None
    non_finite = ~_every(np.isfinite(value.reshape(-1, batch.size)), axis=0)
    undefined = state.undefined | non_finite
    reason = state.reason or ("the answer is not finite there" if _some(non_finite) else None)
    return Evaluation(value, undefined, reason)


# The ufuncs' reductions, called directly: ndarray.all()/.min() and np.nanmax go through Python-level
# wrappers that cost more than the reduction itself on arrays of a few dozen points.
_every = np.logical_and.reduce
_some = np.logical_or.reduce
_lowest = np.minimum.reduce
_highest = np.maximum.reduce


def _filled(size: int, value: float) -> Array:
    """np.full(size, value) without its Python-level wrapper (a float64 array either way)."""
    array = np.empty(size)
    array.fill(value)
    return array


def _largest_ignoring_nan(values: Array) -> float:
    """np.nanmax(values, initial=0.0): fmax skips NaN."""
    return float(np.fmax.reduce(values, axis=None, initial=0.0))


def _eval(expr: Expr, state: _State) -> Array:
    state.budget.spend()
    size = state.batch.size
    # The node kinds are distinct: the most frequent first.
    if isinstance(expr, Binary):
        left, right = _eval(expr.left, state), _eval(expr.right, state)
        if expr.op == "**" and _largest_ignoring_nan(np.abs(right)) > state.limits.max_exponent:
            raise LimitExceeded(f"An exponent is larger than {state.limits.max_exponent:g}.")
        return _binary(expr.op, left, right)
    if isinstance(expr, Indexed):
        return _gather(expr, state)
    if isinstance(expr, Number):
        return _filled(size, expr.value)
    if isinstance(expr, Name):
        # Bound variables first, then free indices, then symbols (the values are never None).
        found = state.bound.get(expr.name)
        if found is None:
            found = state.batch.indices.get(expr.name)
        if found is None:
            found = state.batch.symbols.get(expr.name)
        if found is not None:
            return found
        raise ExpressionError(f"{expr.name} has no value here (is it an index outside its sum?).")
    if isinstance(expr, Negate):
        return np.asarray(-_eval(expr.operand, state))
    if isinstance(expr, Call):
        args = [_eval(arg, state) for arg in expr.args]
        return FUNCTIONS[expr.function].apply(args)
    return _reduce(expr, state)


def _binary(op: str, left: Array, right: Array) -> Array:
    if op == "@":
        return matmul(left, right)
    # value_shape is the shape less the point axis: non-empty exactly when ndim > 1.
    if left.ndim > 1 and right.ndim > 1 and left.shape[:-1] != right.shape[:-1]:
        raise ShapeError(f"{value_shape(left)} {op} {value_shape(right)}")
    if op == "+":
        return np.asarray(left + right)
    if op == "-":
        return np.asarray(left - right)
    if op == "*":
        return np.asarray(left * right)
    if op == "/":
        return np.asarray(left / right)
    if op == "**":
        return np.asarray(np.power(left, right))
    raise ValueError(f"operator {op!r} reached evaluation unresolved")  # a bug, never a student's doing


def _as_index(values: Array, low: int, high: int, indexed: Indexed, state: _State) -> np.ndarray:
    """Per-point integer indices in [low, high]; points where they are not are marked undefined."""
    if values.ndim != 1:
        raise ExpressionError(f"The index of the index in {to_text(indexed)} must be a number, not a vector.")
    whole = values.astype(np.intp)
    # The common case, checked with three reductions: every index whole and in range.
    if _lowest(whole) >= low and _highest(whole) <= high and _every(whole == values):
        return whole
    # NaN and inf fail the comparison, so non-finite values count as not whole.
    integral = np.floor(values) == values
    inside = integral & (values >= low) & (values <= high)
    assert state.active is not None
    assert state.undefined is not None
    bad = ~inside & state.active
    if bad.any():
        state.undefined |= bad
        if state.reason is None:
            point = int(np.argmax(bad))
            at = ", ".join(f"{name} = {int(v[point])}" for name, v in state.batch.indices.items())
            shown = format(float(values[point]), "g")
            where = f" at {at}" if at else ""
            what = f"the index in {to_text(indexed)}"
            state.reason = f"{what} is out of range ({shown} is not in {low}..{high}){where}"
    # Not whole: the lowest index; whole but outside: the nearest end (the point is undefined anyway).
    return np.clip(np.where(integral, whole, low), low, high)


def _gather(expr: Indexed, state: _State) -> Array:
    symbol = state.declarations[expr.name]
    data = state.batch.symbols[expr.name]
    points = state.points
    assert points is not None
    indices = expr.indices
    if symbol.sequence:
        time = _index(indices[0], state)
        data = _pick(data, time, symbol.first_index, data.shape[0] - 1, 0, expr, state, points)
        indices = indices[1:]
    for index in indices:  # components count from 1, as written in mathematics
        component = _index(index, state)
        data = _pick(data, component, 1, data.shape[0], 1, expr, state, points)
    return np.asarray(data)


def _index(index: Expr, state: _State) -> Array | float:
    """An index's values; a float where it is a bound variable, or one plus or minus a number (the
    same at every point), with the steps evaluating it would spend, in the same order."""
    if type(index) is Name:
        constant = state.constants.get(index.name)
        if constant is not None:
            state.budget.spend()
            return constant
    elif (
        type(index) is Binary
        and index.op in ("+", "-")
        and type(index.left) is Name
        and type(index.right) is Number
    ):
        constant = state.constants.get(index.left.name)
        if constant is not None:
            for _node in range(3):  # the sum, its variable, its number
                state.budget.spend()
            shift = index.right.value
            return constant + shift if index.op == "+" else constant - shift
    return _eval(index, state)


def _pick(
    data: Array,
    values: Array | float,
    low: int,
    high: int,
    offset: int,
    indexed: Indexed,
    state: _State,
    points: np.ndarray,
) -> Array:
    """data at each point's index (values in [low, high], less offset); _as_index marks the points
    where an index is not whole or out of range."""
    if isinstance(values, float):
        if low <= values <= high and values.is_integer():
            return _same_index(data, int(values) - offset)
        values = _filled(state.batch.size, values)  # what evaluating the index gives
    if values.ndim == 1:
        lowest, highest = float(_lowest(values)), float(_highest(values))
        if low <= lowest and highest <= high:
            if lowest == highest and lowest.is_integer():
                # The same index at every point, as `h[i-1]` inside a sum: a slice, not a gather.
                return _same_index(data, int(lowest) - offset)
            whole = values.astype(np.intp)
            if _every(whole == values):
                return _take(data, whole - offset if offset else whole, points)
    return _take(data, _as_index(values, low, high, indexed, state) - offset, points)


def _same_index(data: Array, index: int) -> Array:
    """_take(data, [index] * P, points), laid out as _take lays out its result (a fresh array, point
    axis first, then moved last), so that later reductions add in the same order, bit for bit."""
    picked: Array = data[index]
    if picked.ndim == 1:
        return picked
    fresh = picked.transpose((picked.ndim - 1, *range(picked.ndim - 1))).copy()
    return np.asarray(fresh.transpose((*range(1, fresh.ndim), 0)))


def _take(data: Array, first_axis: np.ndarray, points: np.ndarray) -> Array:
    """data[first_axis[p], ..., p] for each point p, keeping the batch axis last."""
    if data.ndim == 2:
        return np.asarray(data[first_axis, points])
    # The point axis comes first out of the fancy index; moved last as np.moveaxis would, without
    # its Python-level wrapper.
    taken = data[first_axis, ..., points]
    return np.asarray(taken.transpose((*range(1, taken.ndim), 0)))


def _reduce(expr: Reduce, state: _State) -> Array:
    start = _eval(expr.start, state)
    stop = _eval(expr.stop, state)
    assert state.active is not None
    if start.ndim != 1 or stop.ndim != 1:
        raise ExpressionError("The bounds of a sum or product must be numbers.")
    for bound in (start, stop):
        if not _every(np.isfinite(bound) & (np.floor(bound) == bound)):
            raise ExpressionError("The bounds of a sum or product must be whole numbers.")
    active = state.active
    any_active = bool(_some(active))
    low = int(_lowest(start[active])) if any_active else 0
    high = int(_highest(stop[active])) if any_active else 0
    if high - low > state.limits.max_range:
        raise LimitExceeded(
            f"A {expr.kind} runs over {high - low} terms; at most {state.limits.max_range} are allowed."
        )
    summing = expr.kind == "sum"
    neutral = 0.0 if summing else 1.0
    total: Array = _filled(state.batch.size, neutral)
    outer_bound = state.bound.get(expr.variable)
    outer_constant = state.constants.get(expr.variable)
    # Every term's points at once, a row per k (the same comparisons as one k at a time).
    terms = np.arange(low, high, dtype=np.float64)[:, np.newaxis]
    in_ranges = active & (start <= terms) & (terms < stop)
    used = _some(in_ranges, axis=1)
    for row, k in enumerate(range(low, high)):
        if not used[row]:
            continue
        in_range = in_ranges[row]
        state.bound[expr.variable] = _filled(state.batch.size, float(k))
        state.constants[expr.variable] = float(k)
        state.active = in_range
        term = _eval(expr.body, state)
        masked = np.where(in_range, term, neutral)
        total = np.asarray(total + masked) if summing else np.asarray(total * masked)
    state.active = active
    if outer_constant is None:
        state.constants.pop(expr.variable, None)
    else:
        state.constants[expr.variable] = outer_constant
    if outer_bound is None:
        state.bound.pop(expr.variable, None)
    else:
        state.bound[expr.variable] = outer_bound
    return total
