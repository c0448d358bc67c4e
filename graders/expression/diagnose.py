"""Comparing an answer with the reference at every point, and naming every mistake when it differs.

A wrong answer is searched for repairs, as a TA's margin notes would name them: each candidate
repair is data (a description quoting the answer's own text, a Diagnosis, the changed tree), and
the search tries combinations breadth-first, fewest repairs first, up to MAX_MISTAKES. Checks on
the value alone (the sign or a constant factor of the whole, a transposed whole) cost no
evaluation and end every branch. The search is bounded by `Limits.max_diagnosis_evaluations` and
`Limits.max_diagnosis_steps`, so a hostile answer stays cheap; when they run out, the feedback
falls back to the first point where the answer differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from graders.expression.config import Diagnosis, ExpressionConfig
from graders.expression.errors import ExpressionError, LimitExceeded
from graders.expression.evaluate import Evaluation, PointBatch, evaluate
from graders.expression.functions import Array, Shape, ShapeError, matmul_shape, value_shape
from graders.expression.limits import Limits, StepBudget
from graders.expression.shapes import shape_of
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

# More mistakes than this in one answer is a different answer, not a slip to point out.
MAX_MISTAKES = 3
COUNT_WORDS = {2: "Two", 3: "Three"}
BOTH_OR_ALL = {2: "both", 3: "all three"}
REDUCTION_WORDS = {"sum": "sum", "prod": "product"}


@dataclass(frozen=True)
class Mistake:
    """One named mistake: `note` is its margin note among several, `alone` its feedback by itself."""

    diagnosis: Diagnosis
    note: str
    alone: str


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


# --- repairs of the tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class Repair:
    """A candidate repair: what the student wrote and what fits (both the answer's own text), the
    mistake it names, and the changed tree."""

    description: str
    fix: str
    diagnosis: Diagnosis
    tree: Expr
    path: tuple[int, ...]  # where, to list the notes left to right
    inserted: Expr  # the new part: not repaired again (a second shift of one index is no slip)
    changes_shape: bool

    def mistake(self) -> Mistake:
        return Mistake(
            self.diagnosis,
            f"{self.description} (→ {self.fix})",
            f"{self.description} (with {self.fix} the answer would be right).",
        )


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
            for repair in _repairs(state.tree, state.inserted, config, shape_only):
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


def _repairs(
    tree: Expr, inserted: frozenset[int], config: ExpressionConfig, shape_only: bool
) -> Iterator[Repair]:
    """Every single repair of the tree, lazily: index mistakes first (the commonest slip), then
    sum and product bounds, products, transposes and signs; or only those that change a shape."""
    shapes = _Shapes(config)
    free = [index.name for index in config.indices]
    sites = list(_sites(tree))
    if shape_only:
        for path, node, _scope, value_position in sites:
            if isinstance(node, Binary) and node.op in ("*", "@") and value_position:
                yield from _product_repairs(tree, path, node, shapes, config)
            elif value_position:
                yield from _transpose_repairs(tree, path, node, shapes)
        return
    for differences in (False, True):  # the renames and shifts of every index before differences
        for path, node, scope, _value_position in sites:
            if isinstance(node, Indexed):
                yield from _index_repairs(tree, path, node, scope, free, inserted, config, differences)
    for path, node, _scope, _value_position in sites:
        if isinstance(node, Reduce):
            yield from _bound_repairs(tree, path, node, inserted)
    for path, node, _scope, value_position in sites:
        if isinstance(node, Binary) and node.op in ("*", "@") and value_position:
            yield from _product_repairs(tree, path, node, shapes, config)
    for path, node, _scope, value_position in sites:
        if value_position:
            yield from _transpose_repairs(tree, path, node, shapes)
    for path, node, _scope, value_position in sites:
        if value_position:
            yield from _sign_repairs(tree, path, node)


QUOTE_LENGTH = 80


def _quote(expr: Expr) -> str:
    """The answer's own text of a part, shortened: a note quotes, it does not copy."""
    text = to_text(expr)
    return text if len(text) <= QUOTE_LENGTH else text[: QUOTE_LENGTH - 1] + "…"


def _sign_description(node: Binary, term: Expr) -> str:
    text = to_text(node)
    where = f" in {text}" if len(text) <= QUOTE_LENGTH else ""
    return f"Check the sign of {_quote(term)}{where}"


def _quote_term(node: Binary, term: Expr) -> str:
    """`a + b`, or where that is long, `… + b` (the term and its sign are what the note is about)."""
    text = to_text(node)
    if len(text) <= QUOTE_LENGTH:
        return text
    elided = Name("…")
    return _quote(replace(node, left=elided) if term is node.right else replace(node, right=elided))


def _sites(
    expr: Expr, path: tuple[int, ...] = (), scope: tuple[str, ...] = (), value_position: bool = True
) -> Iterator[tuple[tuple[int, ...], Expr, tuple[str, ...], bool]]:
    """(path, node, bound variables in scope, whether the node is a value rather than an index,
    a bound or an exponent) for every node, parents first."""
    yield path, expr, scope, value_position
    if isinstance(expr, Indexed):
        for position, index in enumerate(expr.indices):
            yield from _sites(index, (*path, position), scope, False)
    elif isinstance(expr, Reduce):
        yield from _sites(expr.start, (*path, 0), scope, False)
        yield from _sites(expr.stop, (*path, 1), scope, False)
        yield from _sites(expr.body, (*path, 2), (*scope, expr.variable), value_position)
    elif isinstance(expr, Binary) and expr.op == "**":
        yield from _sites(expr.left, (*path, 0), scope, value_position)
        yield from _sites(expr.right, (*path, 1), scope, False)
    else:
        for position, child in enumerate(children(expr)):
            yield from _sites(child, (*path, position), scope, value_position)


def _index_repairs(
    tree: Expr,
    path: tuple[int, ...],
    node: Indexed,
    scope: tuple[str, ...],
    free: list[str],
    inserted: frozenset[int],
    config: ExpressionConfig,
    differences: bool,
) -> Iterator[Repair]:
    if differences and not scope:
        return
    # Only names that have a value here: the question's free indices and the bound variables.
    in_scope = set(free) | set(scope)
    names = [name for name in config.index_names if name in in_scope]
    names += [name for name in scope if name not in names]
    for position, index in enumerate(node.indices):
        if id(index) in inserted:
            continue
        candidates = _index_differences(index, names) if differences else _index_candidates(index, names)
        for candidate in candidates:
            changed = replace(
                node, indices=(*node.indices[:position], candidate, *node.indices[position + 1 :])
            )
            yield Repair(
                f"Check the index of {node.name}: {_quote(node)} does not fit here",
                _quote(changed),
                Diagnosis.INDEX,
                _replace_at(tree, path, changed),
                path,
                candidate,
                False,
            )


def _index_candidates(index: Expr, names: list[str]) -> Iterator[Expr]:
    """Another name for a name written, or the index shifted by one."""
    used = {node.name for node in _names_in(index)}
    for old in sorted(used):
        for new in names:
            if new != old:
                yield _rename(index, old, new)
    yield shifted(index, -1)
    yield shifted(index, +1)


def _index_differences(index: Expr, names: list[str]) -> Iterator[Expr]:
    """Inside a sum or product (names then include its variable): a difference of two names, as
    when the running variable counts back from the top, z[t - k]."""
    if len(names) < 2:
        return
    for first in names:
        for second in names:
            if first != second:
                candidate = Binary("-", Name(first), Name(second))
                if candidate != index:
                    yield candidate


def shifted(expr: Expr, delta: int) -> Expr:
    """`expr + delta`, folded into a trailing constant: i - 1 shifted by +1 is i."""
    if isinstance(expr, Number):
        return Number(expr.value + delta)
    if isinstance(expr, Binary) and expr.op in "+-" and isinstance(expr.right, Number):
        constant = (expr.right.value if expr.op == "+" else -expr.right.value) + delta
        if constant == 0:
            return expr.left
        return Binary("+" if constant > 0 else "-", expr.left, Number(abs(constant)))
    return Binary("+" if delta > 0 else "-", expr, Number(float(abs(delta))))


def _bound_repairs(
    tree: Expr, path: tuple[int, ...], node: Reduce, inserted: frozenset[int]
) -> Iterator[Repair]:
    """A sum's or product's first or last term off by one (bounds read inclusive, as written)."""
    last = _quote(shifted(node.stop, -1))
    description = (
        f"Check the bounds of the {REDUCTION_WORDS[node.kind]} over {node.variable}: "
        f"it runs from {_quote(node.start)} to {last}"
    )
    if id(node.start) not in inserted:
        for delta in (+1, -1):
            start = shifted(node.start, delta)
            changed = replace(node, start=start)
            yield Repair(
                description,
                f"{node.variable} from {_quote(start)} to {last}",
                Diagnosis.INDEX,
                _replace_at(tree, path, changed),
                path,
                start,
                False,
            )
    if id(node.stop) not in inserted:
        for delta in (-1, +1):
            stop = shifted(node.stop, delta)
            changed = replace(node, stop=stop)
            yield Repair(
                description,
                f"{node.variable} from {_quote(node.start)} to {_quote(shifted(stop, -1))}",
                Diagnosis.INDEX,
                _replace_at(tree, path, changed),
                path,
                stop,
                False,
            )


def _product_repairs(
    tree: Expr,
    path: tuple[int, ...],
    node: Binary,
    shapes: _Shapes,
    config: ExpressionConfig,
) -> Iterator[Repair]:
    """An elementwise product where a dot or matrix product is due, or the other way round."""
    left, right = shapes.of(node.left), shapes.of(node.right)
    if left is None or right is None or not left or not right:
        return  # a scalar factor scales: nothing to repair
    written = _quote(node)
    if node.op == "*":
        changed = Binary("@", node.left, node.right)
        if len(left) == 1 and left == right:
            dot = (
                f"dot({_quote(node.left)}, {_quote(node.right)})"
                if "dot" in config.functions
                else _quote(changed)
            )
            yield Repair(
                f"Wrong shape: {written} is an elementwise product of two vectors of {left[0]}",
                f"their dot product {dot}",
                Diagnosis.SHAPE,
                _replace_at(tree, path, changed),
                path,
                changed,
                True,
            )
        elif _matmul_shape(left, right) is not None:
            yield Repair(
                f"Wrong shape: {written} is an elementwise product",
                f"the matrix product {_quote(changed)}",
                Diagnosis.SHAPE,
                _replace_at(tree, path, changed),
                path,
                changed,
                _matmul_shape(left, right) != shapes.of(node),
            )
    elif left == right:
        changed = Binary("*", node.left, node.right)
        yield Repair(
            f"Wrong shape: {written} is a matrix product",
            f"the elementwise product {_quote(changed)}",
            Diagnosis.SHAPE,
            _replace_at(tree, path, changed),
            path,
            changed,
            True,
        )


def _transpose_repairs(tree: Expr, path: tuple[int, ...], node: Expr, shapes: _Shapes) -> Iterator[Repair]:
    """A matrix written transposed, or not transposed, where the other is due."""
    changed: Expr
    if isinstance(node, Call) and node.function == "transpose":
        shape, changed, description = shapes.of(node.args[0]), node.args[0], "Check the transpose in"
    elif isinstance(node, (Name, Indexed)):
        shape, changed, description = shapes.of(node), Call("transpose", (node,)), "Check the transpose of"
    else:
        return
    if shape is not None and len(shape) == 2:
        yield Repair(
            f"{description} {_quote(node)}",
            _quote(changed),
            Diagnosis.TRANSPOSE,
            _replace_at(tree, path, changed),
            path,
            changed,
            shape[0] != shape[1],
        )


def _sign_repairs(tree: Expr, path: tuple[int, ...], node: Expr) -> Iterator[Repair]:
    """One term's sign: `a - b` for `a + b`, `-a + b` for `a + b`, `a` for `-a`."""
    if isinstance(node, Binary) and node.op in ("+", "-"):
        swapped = Binary("-" if node.op == "+" else "+", node.left, node.right)
        flipped = node.left.operand if isinstance(node.left, Negate) else Negate(node.left)
        negated = Binary(node.op, flipped, node.right)
        for term, changed in ((node.right, swapped), (node.left, negated)):
            yield Repair(
                _sign_description(node, term),
                _quote_term(changed, changed.right if term is node.right else changed.left),
                Diagnosis.SIGN,
                _replace_at(tree, path, changed),
                path,
                changed,
                False,
            )
    elif isinstance(node, Negate) and path:  # the whole's sign is checked on its value
        yield Repair(
            f"Check the sign of {_quote(node)}",
            _quote(node.operand),
            Diagnosis.SIGN,
            _replace_at(tree, path, node.operand),
            path,
            node.operand,
            False,
        )


# --- static shapes, for choosing the repairs of products and transposes -------------------------


def _matmul_shape(left: Shape, right: Shape) -> Shape | None:
    try:
        return matmul_shape(left, right)
    except ShapeError:
        return None


class _Shapes:
    """Each node's value shape (shapes.shape_of, the reader's own pass), None where shapes clash;
    memoised by node, as the search asks about the same subtrees again and again."""

    def __init__(self, config: ExpressionConfig) -> None:
        self.config = config
        self._known: dict[int, tuple[Expr, Shape | None]] = {}

    def of(self, expr: Expr) -> Shape | None:
        known = self._known.get(id(expr))
        if known is not None and known[0] is expr:  # the node is kept, so its id is not reused
            return known[1]
        try:
            shape: Shape | None = shape_of(expr, self.config)
        except ExpressionError:
            shape = None
        self._known[id(expr)] = (expr, shape)
        return shape


# --- trees -------------------------------------------------------------------------------------


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


def _names_in(expr: Expr) -> list[Name]:
    if isinstance(expr, Name):
        return [expr]
    return [name for child in children(expr) for name in _names_in(child)]
