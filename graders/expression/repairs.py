"""Candidate repairs of a wrong answer's tree, for the search in diagnose.py: each is data (a
description quoting the answer's own text, what fits instead, a Diagnosis, the changed tree)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from graders.expression.config import Diagnosis, ExpressionConfig
from graders.expression.errors import ExpressionError
from graders.expression.functions import Shape, ShapeError, matmul_shape
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
    shifted,
    to_text,
)

REDUCTION_WORDS = {"sum": "sum", "prod": "product"}


@dataclass(frozen=True)
class Mistake:
    """One named mistake: `note` is its margin note among several, `alone` its feedback by itself."""

    diagnosis: Diagnosis
    note: str
    alone: str


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


def candidate_repairs(
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
