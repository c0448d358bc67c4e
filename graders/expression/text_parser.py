"""The text grammar: Python/numpy-like formulas such as `dot(w_yh, g_o[t]) * w_hh**(t-i)`.

Parsed by lark (LALR) into the shared syntax tree; nothing is ever evaluated by Python itself.
`^` is a power, as in PrairieLearn's and WeBWorK's formula boxes (never XOR).
Generator expressions exist only as the argument of sum(...) or prod(...) over range(...).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import ContextualLexer

from graders.expression.errors import ExpressionError, ExpressionSyntaxError
from graders.expression.lalr import FastLALR
from graders.expression.lexing import FastContextualLexer, share_rule_names
from graders.expression.limits import DEFAULT_LIMITS, Limits, check_source, derivation_sides
from graders.expression.syntax import Binary, Call, Expr, Indexed, Name, Negate, Number, Reduce, Side

GRAMMAR = r"""
?start: expr

?expr: sum
?sum: product
    | sum "+" product   -> add
    | sum "-" product   -> sub
?product: unary
    | product "*" unary -> mul
    | product "/" unary -> div
    | product "@" unary -> matmul
?unary: power
    | "-" unary         -> neg
    | "+" unary
?power: postfix
    | postfix "**" unary -> pow
    | postfix "^" unary  -> pow
?postfix: atom
    | NAME index+       -> indexed
    | postfix ".T"      -> transpose
?atom: NUMBER           -> number
    | NAME              -> name
    | NAME "(" [args] ")" -> call
    | REDUCER "(" [args] ")" -> call
    | REDUCER "(" expr "for" NAME "in" "range" "(" expr ["," expr] ")" ")" -> reduce
    | "(" expr ")"
index: "[" expr ("," expr)* "]"
args: expr ("," expr)*

REDUCER.2: /(sum|prod)(?=\s*\()/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/
%ignore /[ \t\r\n]+/
"""

KEYWORDS = frozenset({"for", "in", "range"})


def _reduce(children: list[Any]) -> Expr:
    kind, body, variable, first, second = children
    start, stop = (Number(0.0), first) if second is None else (first, second)
    return Reduce(str(kind), str(variable), start, stop, body)


def _binary(op: str) -> Callable[[list[Any]], Expr]:
    return lambda children: Binary(op, children[0], children[1])


# What each aliased rule builds from its children (lark's, filtered: no anonymous tokens, None for
# an absent optional part). Both the lark parser's transformer and the fast driver call these.
BUILDERS: dict[str, Callable[[list[Any]], Any]] = {
    "number": lambda children: Number(float(children[0])),
    "name": lambda children: Name(str(children[0])),
    "indexed": lambda children: Indexed(str(children[0]), tuple(e for group in children[1:] for e in group)),
    "index": tuple,
    "args": tuple,
    "call": lambda children: Call(str(children[0]), children[1] or ()),
    "reduce": _reduce,
    "add": _binary("+"),
    "sub": _binary("-"),
    "mul": _binary("*"),
    "div": _binary("/"),
    "matmul": _binary("@"),
    "pow": _binary("**"),
    "neg": lambda children: Negate(children[0]),
    "transpose": lambda children: Call("transpose", (children[0],)),
}


class _ToSyntax(Transformer[Token, Expr]):
    def __default__(self, data: str, children: list[Any], meta: Any) -> Any:
        build = BUILDERS.get(data)
        return Tree(data, children, meta) if build is None else build(children)  # as lark's default


def make_parser(fast: bool = True) -> Lark:
    """The text grammar's parser; `fast=False` is lark as shipped, for tests to compare with."""
    # The transformer runs inside the LALR parser: the syntax tree is built in one pass.
    parser = Lark(
        GRAMMAR,
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=True,
        transformer=_ToSyntax(),
        _plugins={"ContextualLexer": FastContextualLexer if fast else ContextualLexer},
    )
    return share_rule_names(parser) if fast else parser


@lru_cache(maxsize=1)
def _parser() -> FastLALR:
    return FastLALR(make_parser(), BUILDERS)


def describe_unexpected(error: UnexpectedInput, text: str) -> ExpressionSyntaxError:
    position = error.pos_in_stream if error.pos_in_stream is not None else len(text)
    column = position + 1
    if isinstance(error, UnexpectedCharacters):
        character = text[position] if position < len(text) else ""
        message = f"Unexpected character {character!r} at position {column}."
    elif isinstance(error, UnexpectedEOF) or (
        isinstance(error, UnexpectedToken) and error.token.type == "$END"
    ):
        message = "The answer ends too early (an operand or a closing bracket is missing)."
        position = len(text)
    elif isinstance(error, UnexpectedToken):
        message = f"Unexpected {str(error.token)!r} at position {column}."
    else:
        message = f"Cannot read the answer at position {column}."
    return ExpressionSyntaxError(message, position)


def in_side(error: ExpressionError, side: int, start: int, sides: int) -> ExpressionError:
    """The error of one side of a derivation, named as such; an error without a position of its
    own is placed at the side's start."""
    if sides == 1:
        return error
    position = start if error.position is None else error.position
    message = error.message if side == sides else f"In side {side} of the derivation: {error.message}"
    return type(error)(message, position)


def parse_text_sides(text: str, limits: Limits = DEFAULT_LIMITS) -> list[Side]:
    """`a = b = c` → a side per formula, each parsed (names are checked by the grader)."""
    check_source(text, limits)
    spans = derivation_sides(text, limits)
    sides = []
    for number, (start, side) in enumerate(spans, 1):
        try:
            # Blanks in place of the sides before: positions in errors are places in the answer.
            sides.append(Side(start, parse_text(" " * start + side, limits)))
        except ExpressionError as error:
            raise in_side(error, number, start, len(spans)) from None
    return sides


def parse_text_steps(text: str, limits: Limits = DEFAULT_LIMITS) -> list[Expr]:
    """Every side of a derivation `a = b = c` as a syntax tree; a single formula is one side."""
    return [side.expr for side in parse_text_sides(text, limits) if side.expr is not None]


def parse_derivation(text: str, limits: Limits = DEFAULT_LIMITS) -> Expr:
    """`a = b = c`: every side must be a formula; the last one is the answer."""
    return parse_text_steps(text, limits)[-1]


def parse_text(text: str, limits: Limits = DEFAULT_LIMITS) -> Expr:
    """Parse a text-syntax answer into a syntax tree; raises ExpressionError subclasses only."""
    check_source(text, limits)
    if not text.strip():
        raise ExpressionSyntaxError("The answer is empty.")
    try:
        result: Expr
        # A name spelled like a keyword is rare: the tree is walked only when the lexer saw one.
        result, keyword_named = _parser().parse_noting(text, "NAME", KEYWORDS)
    except UnexpectedInput as error:
        raise describe_unexpected(error, text) from None
    except VisitError as error:
        raise ExpressionSyntaxError(f"Cannot read the answer: {error.orig_exc}") from None
    except RecursionError:
        raise ExpressionSyntaxError("The answer is nested too deeply.") from None
    for node in _names(result) if keyword_named else ():
        if node in KEYWORDS:
            raise ExpressionSyntaxError(f"{node!r} can only appear in sum(... for k in range(a, b)).")
    return result


def _names(expr: Expr) -> list[str]:
    from graders.expression.syntax import walk

    found = []
    for node in walk(expr):
        if isinstance(node, Name | Indexed):
            found.append(node.name)
        elif isinstance(node, Call):
            found.append(node.function)
        elif isinstance(node, Reduce):
            found.append(node.variable)
    return found
