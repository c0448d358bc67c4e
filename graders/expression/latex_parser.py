"""The LaTeX grammar: what students paste from their write-ups, e.g. `\\sum_{i=1}^t g_{h,i} \\psi'(z_i)`.

Three steps: split a derivation `a = b = c` into its sides and normalise each (strip $, spacing and
typeset-only commands such as \\left, \\limits, \\displaystyle and \\mathbf, brace lone scripts),
parse with lark's tables (LALR, graders/expression/lalr.py) into a raw tree, then resolve that tree
against the question's declarations (latex_resolver.py) and settle its products from the declared
shapes (shapes.py). The result is the same syntax tree the text grammar produces.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark
from lark.exceptions import UnexpectedInput
from lark.lexer import ContextualLexer

from graders.expression.config import ExpressionConfig
from graders.expression.errors import ExpressionError, ExpressionSyntaxError, LimitExceeded
from graders.expression.lalr import FastLALR
from graders.expression.latex_resolver import Resolver
from graders.expression.lexing import FastContextualLexer, share_rule_names
from graders.expression.limits import DEFAULT_LIMITS, Limits, check_source, derivation_sides
from graders.expression.shapes import settle
from graders.expression.syntax import (
    Expr,
    Side,
)
from graders.expression.text_parser import describe_unexpected, in_side

_SPACING = re.compile(r"\\[,;:! ]|\\q?quad(?![A-Za-z])|~")
# Commands that change only how the formula is typeset, deleted in one pass: sizing (`\left(`),
# limits placement (`\sum\limits_{k=1}^{t}`), styles (`\displaystyle`), struts, and font and
# accent commands around a symbol (`\mathbf{W}_{hh}` leaves `{W}_{hh}`: a bold W is still W;
# `\operatorname{softmax}` leaves `{softmax}`). The braces stay, so nesting is the grammar's.
_TYPESET_ONLY = re.compile(
    r"\\(?:(?:left|right|middle|[bB]igg?[lrm]?)(?![A-Za-z])\.?"
    r"|(?:limits|nolimits|displaystyle|textstyle|scriptstyle|scriptscriptstyle|mathstrut|strut"
    r"|mathbf|boldsymbol|bm|pmb|mathrm|mathit|mathsf|mathnormal|mathcal|vec|operatorname\*?"
    r"|text|textrm|textit|textbf)(?![A-Za-z]))"
)
# A script without braces takes one character, or one command: `_t`, `^2`, `^\top`, `^'`; so
# does an accent: `\hat y` is `\hat{y}`.
_BARE_SCRIPT = re.compile(r"([_^]|\\(?:wide)?hat(?![A-Za-z]))\s*(\\[A-Za-z]+|[A-Za-z0-9'])")
# Math-mode delimiters around a pasted formula: `$...$`, `\(...\)`, `\[...\]`.
_MATH_DELIMITERS = re.compile(r"\$|\\[()\[\]]")
# `\left| x \right|` is an absolute value; a bare `|` could open or close one, so it is not read.
_ABSOLUTE_BAR = re.compile(r"\\(left|right)\s*\|")
_BAR_COMMANDS = {"left": r" \lvert ", "right": r" \rvert "}
# Anything but printable ASCII, tabs and line breaks: above 126 or a control character.
_NOT_PLAIN_ASCII = re.compile(r"[^\t\r\n\x20-\x7e]")


def make_parser(fast: bool = True) -> Lark:
    """The LaTeX grammar's parser; `fast=False` is lark as shipped, for tests to compare with."""
    grammar = (Path(__file__).parent / "latex_grammar.lark").read_text(encoding="utf-8")
    lexer = FastContextualLexer if fast else ContextualLexer
    parser = Lark(grammar, parser="lalr", lexer="contextual", _plugins={"ContextualLexer": lexer})
    return share_rule_names(parser) if fast else parser


@lru_cache(maxsize=1)
def _parser() -> FastLALR:
    return FastLALR(make_parser())


def normalise(source: str) -> str:
    refused = _NOT_PLAIN_ASCII.search(source)  # one regex search, not a Python loop per character
    if refused is not None:
        position, character = refused.start(), refused.group()
        raise ExpressionSyntaxError(
            f"Character {character!r} (U+{ord(character):04X}) at position {position + 1} is not "
            "allowed; write LaTeX commands in plain ASCII (e.g. \\hat{y}, \\times).",
            position,
        )
    text = _MATH_DELIMITERS.sub(" ", source)
    # Before the typeset-only commands go: `\left|` is an absolute value's bar, not sizing.
    text = _ABSOLUTE_BAR.sub(lambda m: _BAR_COMMANDS[m.group(1)], text)
    text = _TYPESET_ONLY.sub(" ", text)
    text = _SPACING.sub(" ", text)
    return _BARE_SCRIPT.sub(lambda m: f"{m.group(1)}{{{m.group(2)}}}", text)


def parse_latex(source: str, config: ExpressionConfig, limits: Limits = DEFAULT_LIMITS) -> Expr:
    """Parse a LaTeX answer into the shared syntax tree, its products resolved from the declared
    shapes (shapes.py); raises ExpressionError subclasses only.

    A derivation `a = b = c` gives its last side; the earlier ones need only be well-formed.
    """
    final = parse_latex_sides(source, config, limits)[-1].expr
    assert final is not None  # the last side is resolved or raises
    return final


def parse_latex_steps(source: str, config: ExpressionConfig, limits: Limits = DEFAULT_LIMITS) -> list[Expr]:
    """Every side of a derivation `a = b = c` as a resolved syntax tree; raises on any side that
    cannot be read, with the position in the whole answer."""
    steps = []
    for side in parse_latex_sides(source, config, limits):
        if side.error is not None:
            raise side.error
        assert side.expr is not None
        steps.append(side.expr)
    return steps


def parse_latex_sides(source: str, config: ExpressionConfig, limits: Limits = DEFAULT_LIMITS) -> list[Side]:
    """Every side parsed; each resolved against the declarations, or the reason it cannot be.

    A side that is not well-formed LaTeX, and a last side that does not resolve, raise; an earlier
    side that does not resolve (`\\frac{\\partial J}{\\partial w}`) is kept with its error.
    """
    check_source(source, limits)
    # Split before normalising, and blanks in place of the sides before: positions in errors are
    # places in what the student wrote (up to what normalising a side shortens).
    spans = derivation_sides(source, limits)
    count = len(spans)
    trees = []
    bars = 0
    for number, (start, text) in enumerate(spans, 1):
        try:
            normalised = normalise(" " * start + text)
            # Bars and angle brackets hold no bracket, so the nesting bound does not see them: they
            # get a bound of their own.
            bars += normalised.count(r"\lvert") + normalised.count(r"\langle")
            if bars > limits.max_nesting:
                raise LimitExceeded(
                    f"An answer may hold at most {limits.max_nesting} absolute values and inner products."
                )
            trees.append(_parse_side(normalised, last=number == count))
        except ExpressionError as error:
            raise in_side(error, number, start, count) from None
    resolver = Resolver(config, limits)
    sides = []
    for number, ((start, _text), tree) in enumerate(zip(spans, trees, strict=True), 1):
        try:
            # Side by side and \cdot become "@" or "*" here: no open product leaves this function.
            sides.append(Side(start, settle(resolver.expr(tree), config, limits)))
        except RecursionError:
            raise ExpressionSyntaxError("The answer is nested too deeply.") from None
        except ExpressionError as error:
            located = in_side(error, number, start, count)
            if number == count or isinstance(error, LimitExceeded):
                raise located from None
            sides.append(Side(start, None, located))
    return sides


def _parse_side(text: str, last: bool) -> Any:
    if not text.strip():
        raise ExpressionSyntaxError("The answer is empty." if last else "This side is empty.")
    try:
        return _parser().parse(text)
    except UnexpectedInput as error:
        raise describe_unexpected(error, text) from None
    except RecursionError:
        raise ExpressionSyntaxError("The answer is nested too deeply.") from None
