"""The one small syntax tree both answer grammars produce, and its canonical text form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from graders.expression.errors import ExpressionError


@dataclass(frozen=True, slots=True)
class Number:
    value: float


@dataclass(frozen=True, slots=True)
class Name:
    """A declared symbol, an index variable, or a variable bound by sum/prod."""

    name: str


@dataclass(frozen=True, slots=True)
class Indexed:
    """`h[t-1]`, `y[t][i]`: a sequence symbol at a time index, optionally a component (from 1)."""

    name: str
    indices: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]


# Products the LaTeX grammar leaves open: two factors side by side, or with \cdot between them.
# The shape pass (shapes.py) turns each into "@" or "*" before anything else sees the tree.
SIDE_BY_SIDE = "side by side"
CDOT = "cdot"
UNRESOLVED_PRODUCTS = frozenset({SIDE_BY_SIDE, CDOT})


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * / @ **, or (only inside the LaTeX reader) one of UNRESOLVED_PRODUCTS
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Reduce:
    """`sum(body for k in range(start, stop))`: stop is exclusive, as in Python."""

    kind: str  # sum | prod
    variable: str
    start: Expr
    stop: Expr
    body: Expr


Expr: TypeAlias = Number | Name | Indexed | Call | Binary | Negate | Reduce


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a derivation `a = b = c`: its tree, or why it cannot be read against the
    declarations (an earlier side may name the quantity, e.g. `dJ/dw`, rather than compute it)."""

    start: int  # offset of the side in the answer
    expr: Expr | None
    error: ExpressionError | None = None


_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "**": 4, SIDE_BY_SIDE: 2, CDOT: 2}
# Products the shape pass has not resolved yet show as written (in messages about the tree that
# stopped the reading before that pass): side by side, or with \cdot.
_JOINERS = {SIDE_BY_SIDE: " ", CDOT: " \\cdot "}
_NEGATE = 3
_ATOM = 5


def node_count(expr: Expr) -> int:
    return sum(1 for _ in walk(expr))


def walk(expr: Expr) -> list[Expr]:
    """Every node, parents before children (iterative: trees can be deep)."""
    out: list[Expr] = []
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(children(node)))
    return out


def children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Indexed):
        return expr.indices
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Negate):
        return (expr.operand,)
    if isinstance(expr, Reduce):
        return (expr.start, expr.stop, expr.body)
    return ()


def _precedence(expr: Expr) -> int:
    if isinstance(expr, Binary):
        return _PRECEDENCE[expr.op]
    if isinstance(expr, Negate):
        return _NEGATE
    return _ATOM


def format_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def to_text(expr: Expr) -> str:
    """The canonical text form: parsing it with the text grammar gives back the same tree."""
    if isinstance(expr, Binary):  # the most frequent node first
        return _binary_text(expr)
    if isinstance(expr, Number):
        return format_number(expr.value)
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Indexed):
        return expr.name + "".join(f"[{to_text(index)}]" for index in expr.indices)
    if isinstance(expr, Call):
        return f"{expr.function}({', '.join(to_text(arg) for arg in expr.args)})"
    if isinstance(expr, Reduce):
        return (
            f"{expr.kind}({to_text(expr.body)} for {expr.variable} in "
            f"range({to_text(expr.start)}, {to_text(expr.stop)}))"
        )
    if isinstance(expr, Negate):
        inner = to_text(expr.operand)
        # `-x ** 2` already means -(x ** 2); anything weaker than unary minus needs parentheses.
        return f"-({inner})" if _precedence(expr.operand) < _NEGATE else f"-{inner}"
    return _binary_text(expr)


def _binary_text(expr: Binary) -> str:
    own = _PRECEDENCE[expr.op]
    left, right = to_text(expr.left), to_text(expr.right)
    if expr.op == "**":
        # Right-associative and binding tighter than unary minus on its left.
        if _precedence(expr.left) <= own:
            left = f"({left})"
        if _precedence(expr.right) < _NEGATE:
            right = f"({right})"
        return f"{left} ** {right}"
    if _precedence(expr.left) < own:
        left = f"({left})"
    # Left-associative: an equal-precedence right operand keeps its parentheses.
    if _precedence(expr.right) <= own:
        right = f"({right})"
    return left + _JOINERS.get(expr.op, f" {expr.op} ") + right


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
