"""Writing a syntax tree as LaTeX, so a preview can show the reading as typeset math.

The output is written for the LaTeX reader in latex_parser.py: parse_latex(to_latex(tree)) gives
back the same tree. Symbols take their first declared spelling that fits their indices, functions
their LaTeX command, sums and products their inclusive upper bound, and parentheses appear only
where the reader would otherwise group differently.

Products are written so they read back the same under both product rules (today's, and the one
where juxtaposition and \\cdot multiply matrices): "@" is juxtaposition after a transpose and
\\cdot otherwise; "*" is \\times, or juxtaposition after a plain number (`2 x`).

Written bottom-up without recursion, so the deepest tree the parsers accept cannot exhaust the
stack; every node adds at most a bounded number of characters.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import NamedTuple

from graders.expression.config import ExpressionConfig
from graders.expression.latex_resolver import (
    DERIVATIVES,
    FUNCTION_COMMANDS,
    TRANSPOSE_MARKS,
    _spellings,
)
from graders.expression.syntax import (
    Binary,
    Call,
    Expr,
    Indexed,
    Name,
    Negate,
    Number,
    Reduce,
    format_number,
    shifted,
    to_text,
)

# How tightly a written piece binds, as the LaTeX grammar groups it: a piece goes inside another
# without parentheses only where the grammar would read it back as the same subtree.
_ADDITIVE = 1  # a + b, a - b
_NEGATED = 2  # -a: allowed only first in a sum, or alone
_PRODUCT = 3  # a \times b, 2 x, w^\top g
_FACTOR = 4  # \sum_{k=1}^{t} ...: a factor, whose body takes in what follows it
_POWER = 5  # a^{b}, a^\top
_ATOM = 6  # symbols, numbers, calls, \frac, parenthesised pieces

# A written number longer than this is shown in scientific notation (which reads back as a product).
_LONGEST_NUMBER = 32
# What a subscript can hold; an index written otherwise is shown typeset but cannot be read back.
_SUBSCRIPT_TEXT = re.compile(r"[A-Za-z0-9.+\-]+")

_COMMAND_OF = {function: command for command, function in reversed(FUNCTION_COMMANDS.items())}
_PRIMED = {derivative: function for function, derivative in DERIVATIVES.items()}


class _Written(NamedTuple):  # a tuple: made once per node, and cheaper than a frozen dataclass
    text: str
    binding: int
    # Ends in a \sum or \prod: a factor written right after it would join its body.
    open_end: bool = False


def to_latex(expr: Expr, config: ExpressionConfig) -> str:
    """The tree as LaTeX in the question's spellings, e.g. `w_{yh}^\\top g_{o,t} \\times w_{hh}^{t - i}`."""
    return _writer(config).write(expr)


# Keyed by the config object, as configs are immutable and reused per question; listing the
# spellings costs more than writing a typical answer.
_WRITERS: dict[int, tuple[ExpressionConfig, _Writer]] = {}


def _writer(config: ExpressionConfig) -> _Writer:
    entry = _WRITERS.get(id(config))
    if entry is not None and entry[0] is config:
        return entry[1]
    writer = _Writer(config)
    if len(_WRITERS) > 256:
        _WRITERS.clear()
    _WRITERS[id(config)] = (config, writer)
    return writer


def _operands(expr: Expr) -> tuple[Expr, ...]:
    """The children whose written form a node is made of (an index is written as subscript text)."""
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, Negate):
        return (expr.operand,)
    if isinstance(expr, Reduce):
        return (expr.start, expr.stop, expr.body)
    return ()


def _parenthesised(piece: _Written) -> _Written:
    return _Written(rf"\left({piece.text}\right)", _ATOM)


def _at_least(piece: _Written, binding: int) -> str:
    return piece.text if piece.binding >= binding else _parenthesised(piece).text


def _number(value: float) -> _Written:
    if math.isnan(value):
        return _Written(r"\mathrm{NaN}", _ATOM)
    if math.isinf(value):
        return _Written(r"\infty" if value > 0 else r"\left(-\infty\right)", _ATOM)
    if value < 0:
        return _parenthesised(_Written("-" + _number(-value).text, _NEGATED))
    if value.is_integer() and value < 1e15:
        return _Written(format_number(value), _ATOM)
    positional = format(Decimal(repr(value)), "f")
    if len(positional) <= _LONGEST_NUMBER:
        return _Written(positional, _ATOM)
    mantissa, _, exponent = f"{value:.15e}".partition("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return _parenthesised(_Written(rf"{mantissa} \times 10^{{{int(exponent)}}}", _PRODUCT))


def _additive(left: _Written, op: str, right: _Written) -> _Written:
    # Left-associative, and a minus sign can open a sum only: `a - (b + c)`, `a + (-b)`.
    return _Written(f"{left.text} {op} {_at_least(right, _PRODUCT)}", _ADDITIVE)


class _Writer:
    def __init__(self, config: ExpressionConfig) -> None:
        self.config = config
        spellings = _spellings(config)
        self.bases = {spelling.base for spelling in spellings}
        # Per symbol, in declared order: (base, subscript template with a `#` per index, or None).
        self.spellings: dict[str, list[tuple[str, str | None]]] = {}
        for spelling in spellings:
            # `shown` is base_{template}; the base holds no underscore.
            template = spelling.shown.partition("_")[2][1:-1].replace(" ", "") if spelling.pattern else None
            self.spellings.setdefault(spelling.symbol.name, []).append((spelling.base, template))

    def write(self, expr: Expr) -> str:
        # Parents before their operands, then written in reverse: no recursion on the tree's depth.
        order: list[Expr] = []
        stack: list[Expr] = [expr]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(_operands(node))
        written: dict[int, _Written] = {}
        for node in reversed(order):
            written[id(node)] = self.node(node, written)
        return written[id(expr)].text

    def node(self, expr: Expr, written: dict[int, _Written]) -> _Written:
        if isinstance(expr, Binary):
            return self.binary(expr, written[id(expr.left)], written[id(expr.right)])
        if isinstance(expr, Indexed):
            return _Written(self.symbol(expr.name, expr.indices), _ATOM)
        if isinstance(expr, Name):
            return _Written(self.symbol(expr.name, ()), _ATOM)
        if isinstance(expr, Number):
            return _number(expr.value)
        if isinstance(expr, Call):
            return self.call(expr, [written[id(arg)] for arg in expr.args])
        if isinstance(expr, Negate):
            operand = written[id(expr.operand)]
            return _Written("-" + _at_least(operand, _PRODUCT), _NEGATED, operand.open_end)
        return self.reduce(expr, written)

    # --- symbols -------------------------------------------------------------------------------

    def symbol(self, name: str, indices: tuple[Expr, ...]) -> str:
        """The first declared spelling with a `#` for each index, the indices written in."""
        declared = self.spellings.get(name)
        if declared is None:  # an index or a bound variable
            return name
        filled = [self.subscript_index(index) for index in indices]
        for base, template in declared:
            if template is None:
                if not indices:
                    return base
                continue
            if template.count("#") != len(indices):
                continue
            for index in filled:
                template = template.replace("#", index, 1)
            return f"{base}_{{{template}}}"
        # Used in a way no spelling declares (check_names refuses it): shown, not readable.
        return declared[0][0] + (f"_{{{','.join(filled)}}}" if filled else "")

    def subscript_index(self, index: Expr) -> str:
        # The reader takes a subscript's characters as a text-form index (`h_{t-1}`).
        text = to_text(index).replace(" ", "")
        if _SUBSCRIPT_TEXT.fullmatch(text):
            return text
        return self.write(index)

    # --- calls ---------------------------------------------------------------------------------

    def call(self, expr: Call, args: list[_Written]) -> _Written:
        if expr.function == "transpose" and len(args) == 1:
            return _Written(self.power_base(expr.args[0], args[0]) + r"^\top", _POWER)
        if expr.function == "sqrt" and len(args) == 1:
            return _Written(rf"\sqrt{{{args[0].text}}}", _ATOM)
        if expr.function == "abs" and len(args) == 1:
            return _Written(rf"\lvert {args[0].text} \rvert", _ATOM)
        listed = ", ".join(arg.text for arg in args)
        return _Written(rf"{self.function_head(expr.function)}\left({listed}\right)", _ATOM)

    def function_head(self, function: str) -> str:
        # A command is a function only where no declared symbol is spelled with it.
        command = _COMMAND_OF.get(function)
        if command is not None and command not in self.bases:
            return command
        primed = _COMMAND_OF.get(_PRIMED.get(function, ""))
        if primed is not None and primed not in self.bases:
            return primed + "'"
        return rf"\operatorname{{{function}}}"

    # --- operators -----------------------------------------------------------------------------

    def power_base(self, base: Expr, written: _Written) -> str:
        # A script binds to the last atom, so anything but a symbol or number is parenthesised;
        # `\tanh(z)^2` is too, as readers differ on it.
        if isinstance(base, Number | Name | Indexed) and written.binding == _ATOM:
            return written.text
        return _parenthesised(written).text

    def binary(self, expr: Binary, left: _Written, right: _Written) -> _Written:
        if expr.op in ("+", "-"):
            return _additive(left, expr.op, right)
        if expr.op == "/":
            return _Written(rf"\frac{{{left.text}}}{{{right.text}}}", _ATOM)
        if expr.op == "**":
            exponent = right.text
            if exponent in TRANSPOSE_MARKS:  # `x^{T}` would read as a transpose
                exponent = _parenthesised(right).text
            return _Written(f"{self.power_base(expr.left, left)}^{{{exponent}}}", _POWER)
        # A product chain is read left to right, each factor a single item: parenthesise a left
        # side whose \sum would swallow the right one, and a right side that is itself a product.
        left_text = left.text if left.binding >= _PRODUCT and not left.open_end else _parenthesised(left).text
        right_text = _at_least(right, _FACTOR)
        if expr.op == "@":
            if isinstance(expr.left, Call) and expr.left.function == "transpose":
                joined = f"{left_text} {right_text}"
            else:
                joined = rf"{left_text} \cdot {right_text}"
        elif isinstance(expr.left, Number) and not right_text[0].isdigit():
            joined = f"{left_text} {right_text}"
        else:
            joined = rf"{left_text} \times {right_text}"
        return _Written(joined, _PRODUCT, right.open_end and right_text == right.text)

    def reduce(self, expr: Reduce, written: dict[int, _Written]) -> _Written:
        start, stop, body = (written[id(part)] for part in (expr.start, expr.stop, expr.body))
        last = self.inclusive_bound(expr.stop, stop, written)
        # The body is the product that follows: a sum or a negation in it needs parentheses.
        command = r"\sum" if expr.kind == "sum" else r"\prod"
        text = rf"{command}_{{{expr.variable}={start.text}}}^{{{last.text}}} {_at_least(body, _PRODUCT)}"
        return _Written(text, _FACTOR, open_end=True)

    def inclusive_bound(self, stop: Expr, stop_written: _Written, written: dict[int, _Written]) -> _Written:
        """The written upper bound B whose reading (B + 1, folded) is the tree's exclusive stop."""
        if isinstance(stop, Number) and stop.value >= 1:
            return _number(stop.value - 1)
        if isinstance(stop, Binary) and stop.op == "+" and isinstance(stop.right, Number):
            left = written[id(stop.left)]
            if stop.right.value == 1 and shifted(stop.left, +1) == stop:  # t + 1 → t
                return left
            if stop.right.value > 1:  # t + 3 → t + 2
                return _additive(left, "+", _number(stop.right.value - 1))
        # Anything else: B = stop - 1, which the reader folds back to stop.
        return _additive(stop_written, "-", _number(1.0))
