"""The static shape pass: every node's shape, read from the declared shapes before any evaluation.

It does two things. It resolves the products the LaTeX reader leaves open (two factors side by
side, or `\\cdot`): the matrix product ("@") when both factors are non-scalar, scaling ("*") when
either is a scalar, as every deep-learning text writes them. And it refuses, with a message that
names the factors and how they fail to fit, any product, sum or call whose shapes do not fit,
where evaluation would only have said "(2, 3) * (3, 1)".

1-D vectors have no orientation in numpy, so the pass tracks one: `w^\\top` of a 1-D `w` is a row.
A row side by side with a vector is their dot product (`w^\\top g`); two plain vectors side by side
(`g w`) could be the dot or the elementwise product and are refused, naming both spellings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from graders.expression.config import ExpressionConfig
from graders.expression.errors import ExpressionError, ExpressionSyntaxError
from graders.expression.evaluate import check_names, declared_symbols
from graders.expression.functions import FUNCTIONS, Shape, ShapeError, matmul_shape
from graders.expression.limits import Limits
from graders.expression.syntax import (
    CDOT,
    SIDE_BY_SIDE,
    UNRESOLVED_PRODUCTS,
    Binary,
    Call,
    Expr,
    Indexed,
    Name,
    Negate,
    Number,
    Reduce,
    format_number,
    to_text,
)


class ShapeMismatch(ExpressionError):
    """Factors, terms or arguments whose declared shapes do not fit together: a wrong answer (the
    grader marks it incorrect with the diagnosis `shape`), not an unreadable one."""


class AmbiguousProduct(ExpressionError):
    """Two 1-D vectors side by side: a notation with two readings, so the answer is `invalid`."""


_LONGEST_SHOWN = 60  # characters of a factor quoted in a message
_ELEMENTWISE_VERBS = {
    "+": "added",
    "-": "subtracted",
    "*": "multiplied elementwise",
    "/": "divided elementwise",
    "**": "raised to a power elementwise",
}


def settle(expr: Expr, config: ExpressionConfig, limits: Limits, latex: bool = True) -> Expr:
    """A parsed side made ready to evaluate: bounded in size, its names checked, its products
    resolved; raises ExpressionError subclasses only."""
    # One walk: the size bound first, then the names (the first wrong one).
    check_names(expr, config, limits, max_nodes=limits.max_nodes)
    return resolve_products(expr, config, latex)


def resolve_products(expr: Expr, config: ExpressionConfig, latex: bool = True) -> Expr:
    """The tree with every open product made "@" or "*"; raises ShapeMismatch where shapes do not fit.

    Names must already be checked (evaluate.check_names). `latex` only chooses how messages spell
    the factors and the suggested fixes.
    """
    try:
        return _ShapePass(config, latex).visit(expr, frozenset()).expr
    except RecursionError:
        raise ExpressionSyntaxError("The answer is nested too deeply.") from None


def shape_of(expr: Expr, config: ExpressionConfig) -> Shape:
    """The shape of a resolved, name-checked tree's value (without the batch axis)."""
    return _ShapePass(config, latex=False).visit(expr, frozenset()).shape


def describe(shape: Shape) -> str:
    if not shape:
        return "scalar"
    if len(shape) == 1:
        return f"vector of {shape[0]}"
    return " x ".join(str(n) for n in shape)


class _Typed(NamedTuple):  # a tuple: made once per node, and cheaper than a frozen dataclass
    expr: Expr
    shape: Shape
    row: bool = False  # a 1-D vector written transposed (`w^\top`), or scaled from one


class _ShapePass:
    def __init__(self, config: ExpressionConfig, latex: bool) -> None:
        self.config = config
        self.latex = latex
        self.symbols = declared_symbols(config)

    def visit(self, expr: Expr, bound: frozenset[str]) -> _Typed:
        if isinstance(expr, Number):
            return _Typed(expr, ())
        if isinstance(expr, Name):
            symbol = self.symbols.get(expr.name)
            if expr.name in bound or symbol is None:
                return _Typed(expr, ())  # an index, free or bound by a sum
            return _Typed(expr, tuple(symbol.shape))
        if isinstance(expr, Indexed):
            return self.indexed(expr, bound)
        if isinstance(expr, Negate):
            operand = self.visit(expr.operand, bound)
            rebuilt = expr if operand.expr is expr.operand else Negate(operand.expr)
            return _Typed(rebuilt, operand.shape, operand.row)
        if isinstance(expr, Call):
            return self.call(expr, bound)
        if isinstance(expr, Binary):
            return self.binary(expr, bound)
        return self.reduce(expr, bound)

    def indexed(self, expr: Indexed, bound: frozenset[str]) -> _Typed:
        symbol = self.symbols.get(expr.name)
        assert symbol is not None  # names are checked first
        indices = tuple(self.scalar(index, bound, "The index of {}", expr.name) for index in expr.indices)
        # The time index of a sequence picks a step; each further index consumes an axis.
        components = len(expr.indices) - int(symbol.sequence)
        rebuilt = expr if _same(indices, expr.indices) else Indexed(expr.name, indices)
        return _Typed(rebuilt, tuple(symbol.shape[components:]))

    def reduce(self, expr: Reduce, bound: frozenset[str]) -> _Typed:
        start = self.scalar(expr.start, bound, "The bounds of a {}", expr.kind)
        stop = self.scalar(expr.stop, bound, "The bounds of a {}", expr.kind)
        body = self.visit(expr.body, bound | {expr.variable})
        rebuilt = (
            expr
            if start is expr.start and stop is expr.stop and body.expr is expr.body
            else Reduce(expr.kind, expr.variable, start, stop, body.expr)
        )
        return _Typed(rebuilt, body.shape, body.row)

    def scalar(self, expr: Expr, bound: frozenset[str], template: str, word: str) -> Expr:
        """A scalar's resolved tree; `template` with `word` names it in the error (formatted only then)."""
        typed = self.visit(expr, bound)
        if typed.shape:
            what = template.format(word)
            raise ShapeMismatch(
                f"{what} must be a number, not a {describe(typed.shape)} ({self.shown(expr)})."
            )
        return typed.expr

    def call(self, expr: Call, bound: frozenset[str]) -> _Typed:
        args = [self.visit(arg, bound) for arg in expr.args]
        try:
            shape = FUNCTIONS[expr.function].shape([arg.shape for arg in args])
        except ShapeError as error:
            raise ShapeMismatch(f"The shapes do not fit in {self.shown(expr)}: {error}.") from None
        rebuilt_args = tuple(arg.expr for arg in args)
        rebuilt = expr if _same(rebuilt_args, expr.args) else Call(expr.function, rebuilt_args)
        row = expr.function == "transpose" and len(shape) == 1 and not args[0].row
        return _Typed(rebuilt, shape, row)

    def binary(self, expr: Binary, bound: frozenset[str]) -> _Typed:
        left, right = self.visit(expr.left, bound), self.visit(expr.right, bound)
        op = self.product_operator(expr.op, left, right) if expr.op in UNRESOLVED_PRODUCTS else expr.op
        rebuilt = (
            expr
            if op == expr.op and left.expr is expr.left and right.expr is expr.right
            else Binary(op, left.expr, right.expr)
        )
        if op == "@":
            return self.matrix_product(rebuilt, expr.op, left, right)
        if left.shape and right.shape and left.shape != right.shape:
            raise ShapeMismatch(self.elementwise_mismatch(op, left, right))
        if not left.shape:
            return _Typed(rebuilt, right.shape, right.row)
        if not right.shape:
            return _Typed(rebuilt, left.shape, left.row)
        return _Typed(rebuilt, left.shape, left.row and right.row)

    def product_operator(self, written: str, left: _Typed, right: _Typed) -> str:
        """How an open product reads: scaling, the matrix (or dot) product, or refused as ambiguous."""
        if not left.shape or not right.shape:
            return "*"
        if written == CDOT or len(left.shape) == 2 or len(right.shape) == 2:
            return "@"
        if left.row and not right.row:
            return "@"  # w^\top g: the dot product
        plain_right = _untransposed(right.expr) if right.row else right.expr
        a, b = self.shown(left.expr), self.shown(plain_right)
        readings = (
            f"for their dot product write {a}^\\top {b} or {a} \\cdot {b}; "
            f"for their elementwise product write {a} \\odot {b}."
        )
        if right.row:
            raise AmbiguousProduct(
                f"{a} {self.shown(right.expr)}: a vector times a transposed vector is an outer product, but "
                f"{a} and {b} are declared as 1-D vectors (no rows or columns) in this question; {readings}"
            )
        raise AmbiguousProduct(
            f"{a} {b}: two vectors side by side can be read two ways (a dot product or an elementwise "
            f"product); {readings}"
        )

    def matrix_product(self, rebuilt: Expr, written: str, left: _Typed, right: _Typed) -> _Typed:
        try:
            shape = matmul_shape(left.shape, right.shape)
        except ShapeError:
            raise ShapeMismatch(self.product_mismatch(written, left, right)) from None
        return _Typed(rebuilt, shape, left.row and len(shape) == 1)

    def product_mismatch(self, written: str, left: _Typed, right: _Typed) -> str:
        a, b = self.shown(left.expr), self.shown(right.expr)
        factors = f"{a} ({describe(left.shape)}) and {b} ({describe(right.shape)})"
        if not left.shape or not right.shape:
            return f"{factors}: a matrix product (@) needs two non-scalars; to scale, write *."
        how = {SIDE_BY_SIDE: "side by side", CDOT: "with \\cdot"}.get(written, "in a matrix product (@)")
        inner_left = left.shape[-1]
        inner_right = right.shape[0] if len(right.shape) == 1 else right.shape[-2]
        message = f"{factors} do not fit {how}: a matrix product needs {inner_left} = {inner_right}"
        hint = self.transpose_hint(left, right, _fits_matmul)
        if not hint and (1, 1) in (left.shape, right.shape):
            hint = " (a 1 x 1 matrix is a matrix here, not a scalar)"
        return _sentence(message + hint)

    def elementwise_mismatch(self, op: str, left: _Typed, right: _Typed) -> str:
        a, b = self.shown(left.expr), self.shown(right.expr)
        message = (
            f"{a} ({describe(left.shape)}) and {b} ({describe(right.shape)}) cannot be "
            f"{_ELEMENTWISE_VERBS[op]}: that needs equal shapes (or a scalar)"
        )
        hint = self.transpose_hint(left, right, lambda a, b: a == b)
        if not hint and op == "*" and _fits_matmul(left.shape, right.shape):
            if self.latex:
                hint = (
                    "; for their matrix product write them side by side or with \\cdot "
                    "(\\times, *, \\odot and \\circ are elementwise)"
                )
            else:
                hint = "; for their matrix product write @ (* is elementwise)"
        return _sentence(message + hint)

    def transpose_hint(self, left: _Typed, right: _Typed, fits: Callable[[Shape, Shape], bool]) -> str:
        if len(right.shape) == 2 and fits(left.shape, right.shape[::-1]):
            return f"; did you mean {self.transposed(right.expr)}?"
        if len(left.shape) == 2 and fits(left.shape[::-1], right.shape):
            return f"; did you mean {self.transposed(left.expr)}?"
        return ""

    def transposed(self, expr: Expr) -> str:
        if isinstance(expr, Call) and expr.function == "transpose":
            return f"{self.shown(expr.args[0])} instead of {self.shown(expr)}"
        return f"{self.shown(expr)}^\\top" if self.latex else f"{self.shown(expr)}.T"

    def shown(self, expr: Expr) -> str:
        """A factor as the student would write it (declared LaTeX spellings), bracketed if compound."""
        written = self.written(expr)
        if len(written) > _LONGEST_SHOWN:
            written = written[: _LONGEST_SHOWN - 3] + "..."
        return written if isinstance(expr, Number | Name | Indexed | Call) else f"({written})"

    def written(self, expr: Expr) -> str:
        """An expression in the answer's notation; LaTeX shows `@` side by side and `*` as \\times."""
        if not self.latex or isinstance(expr, Reduce):
            return to_text(expr)
        if isinstance(expr, Number):
            return format_number(expr.value)
        if isinstance(expr, Name | Indexed):
            return self.spelled(expr)
        if isinstance(expr, Call):
            if expr.function == "transpose":
                return f"{self.shown(expr.args[0])}^\\top"
            return to_text(expr)
        if isinstance(expr, Negate):
            return f"-{self.factor(expr.operand)}"
        if expr.op in ("+", "-"):
            right = self.written(expr.right)
            bracketed = isinstance(expr.right, Binary) and expr.right.op in ("+", "-")
            return f"{self.written(expr.left)} {expr.op} {f'({right})' if bracketed else right}"
        if expr.op == "/":
            return f"\\frac{{{self.written(expr.left)}}}{{{self.written(expr.right)}}}"
        if expr.op == "**":
            return f"{self.shown(expr.left)}^{{{self.written(expr.right)}}}"
        scaling = _constant(expr.left) or _constant(expr.right)
        joiner = " " if expr.op == "@" or scaling else " \\times "
        return f"{self.factor(expr.left)}{joiner}{self.factor(expr.right)}"

    def factor(self, expr: Expr) -> str:
        """Inside a product: only sums and negations need brackets."""
        if isinstance(expr, Negate) or (isinstance(expr, Binary) and expr.op in ("+", "-")):
            return f"({self.written(expr)})"
        return self.written(expr)

    def spelled(self, expr: Name | Indexed) -> str:
        symbol = self.symbols.get(expr.name)
        spelling = symbol.latex[0] if symbol is not None and symbol.latex else expr.name
        if isinstance(expr, Name):
            return expr.name if "#" in spelling else spelling
        written = ",".join(to_text(index) for index in expr.indices)
        return spelling.replace("#", written, 1) if "#" in spelling else f"{spelling}_{{{written}}}"


def _same(new: tuple[Expr, ...], old: tuple[Expr, ...]) -> bool:
    """Identity, not equality: comparing trees for equality would walk them again at every node."""
    return all(a is b for a, b in zip(new, old, strict=True))


def _sentence(text: str) -> str:
    return text if text.endswith(("?", ".")) else text + "."


def _fits_matmul(left: Shape, right: Shape) -> bool:
    try:
        matmul_shape(left, right)
    except ShapeError:
        return False
    return True


def _constant(expr: Expr) -> bool:
    if isinstance(expr, Number):
        return True
    if isinstance(expr, Negate):
        return _constant(expr.operand)
    return isinstance(expr, Binary) and _constant(expr.left) and _constant(expr.right)


def _untransposed(expr: Expr) -> Expr:
    return expr.args[0] if isinstance(expr, Call) and expr.function == "transpose" else expr
