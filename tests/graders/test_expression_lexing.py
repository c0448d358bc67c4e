"""The fast lexer (graders/expression/lexing.py) against lark's own contextual lexer.

Both grammars keep changing; the fast lexer is built from lark's terminal tables, so it follows.
This pins it: on every answer below (the SPEC's formulas, the hand-in, the hostile inputs, the
notation corpus when present, and inputs made to hit keywords, newlines and lexing errors) both
lexers must give the same tokens, positions included, and the parsers the same result or error.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from typing import Any

import pytest
from lark import Lark
from lark.exceptions import UnexpectedInput

from graders.expression import latex_parser, text_parser
from graders.expression.errors import ExpressionError
from graders.expression.lexing import FastContextualLexer
from graders.expression.limits import DEFAULT_LIMITS, check_source
from tests.graders.hw5_expressions import HANDIN_LATEX, REFERENCE_LATEX, REFERENCE_TEXT
from tests.graders.test_expression_grading import HOSTILE

TEXT = [
    *REFERENCE_TEXT.values(),
    "-(y[t] - yhat[t])",
    "sum(h[i-1] * g_h[i] * (1 - tanh(z[i])**2) for i in range(1, t+1))",
    "w_yh.T @ g_o[t] * 2.5e-3 / .5",
    "sum (x[k] for k in range(3))",  # REDUCER's lookahead with a space
    "summary + product + prod",  # names that start like a reducer
    "x + for",  # a keyword where a name may stand
    "range(3) + in",
    "forx + inrange",
    "yhat[t]\n - y[t]\r\n + 1",  # newlines: lines and columns must agree
    "yhat[t] - y[t] $ 1",  # an unexpected character
    "yhat[t] - - ",
    "(((x",
    "",
    "   ",
]
LATEX = [
    *REFERENCE_LATEX.values(),
    *HANDIN_LATEX.values(),
    r"\sum_{t=1}^{3} gw_{hh,t}",
    r"\frac{1}{2} \sqrt{x_t} \cdot \widehat{y}_t * 3",
    r"\summary + \prod_{k=1}^{2} \psi'(z_k)",  # a command that starts like a big operator
    r"\tanh(z_i)^{2} \sigma(x) \exp{y}",
    "h_{t-1}\n\\times\n y_{t,2}",
    r"h_{t} \times",
    r"h_t & 1",
    r"h_{t}} + 1",
]


def _corpus() -> list[tuple[str, str | None]]:
    # Slice E's corpus of notations (issue 10), once it is on this branch.
    if importlib.util.find_spec("tests.graders.notation_corpus") is None:
        return []
    corpus: Any = importlib.import_module("tests.graders.notation_corpus")
    return [(written.answer, written.format) for written in corpus.CORPUS]


@cache
def _parsers(grammar: str) -> tuple[Lark, Lark]:
    module: Any = text_parser if grammar == "text" else latex_parser
    return module.make_parser(fast=True), module.make_parser(fast=False)


def _run(parser: Lark, text: str) -> tuple[list[tuple[Any, ...]], object]:
    """The tokens the parser was fed, and its result or its error."""
    tokens: list[tuple[Any, ...]] = []
    interactive: Any = parser.parse_interactive(text)
    try:
        for token in interactive.iter_parse():
            fields = (
                token.start_pos,
                token.end_pos,
                token.line,
                token.column,
                token.end_line,
                token.end_column,
            )
            tokens.append((token.type, str(token), *fields))
        outcome: object = interactive.resume_parse()
    except UnexpectedInput as error:
        expected = getattr(error, "expected", None) or getattr(error, "allowed", None)
        wrong = getattr(error, "token", None)
        shown = None if wrong is None else (wrong.type, str(wrong), wrong.start_pos)
        outcome = (type(error).__name__, error.pos_in_stream, error.line, error.column, shown, expected)
    return tokens, outcome


def _case_id(value: object) -> str:
    return str(value)[:40]


def _cases() -> list[tuple[str, str]]:
    cases = [("text", answer) for answer in TEXT]
    cases += [("latex", answer) for answer in LATEX]
    cases += [("latex", answer) for answer in HOSTILE if "\\" in answer]
    cases += [("text", answer) for answer in HOSTILE if "\\" not in answer]
    for answer, written_format in _corpus():
        chosen = written_format or ("latex" if "\\" in answer else "text")
        cases.append((chosen, answer))
        # Whatever the format detection decides, both grammars must lex it alike.
        cases.append(("text" if chosen == "latex" else "latex", answer))
    # Over-long or over-nested input is refused before any parser sees it.
    return [(grammar, answer) for grammar, answer in cases if _within_limits(answer)]


def _within_limits(answer: str) -> bool:
    try:
        check_source(answer, DEFAULT_LIMITS)
    except ExpressionError:
        return False
    return True


@pytest.mark.parametrize(("grammar", "answer"), _cases(), ids=_case_id)
def test_fast_lexer_gives_lark_token_stream(grammar: str, answer: str) -> None:
    fast, stock = _parsers(grammar)
    text = latex_parser.normalise(answer) if grammar == "latex" and answer.isascii() else answer
    (fast_tokens, fast_outcome), (stock_tokens, stock_outcome) = _run(fast, text), _run(stock, text)
    assert fast_tokens == stock_tokens
    try:
        assert fast_outcome == stock_outcome
    except RecursionError:  # a deep tree (hostile input) cannot be compared; its tokens were
        assert type(fast_outcome) is type(stock_outcome)


def test_the_grammars_use_the_fast_lexer() -> None:
    for module in (text_parser, latex_parser):
        parser: Any = module._parser().lark
        assert isinstance(parser.parser.lexer, FastContextualLexer)


def test_the_cases_cover_lexing_errors_and_keywords() -> None:
    outcomes = [_run(_parsers(grammar)[1], answer)[1] for grammar, answer in _cases()]
    kinds = {outcome[0] for outcome in outcomes if isinstance(outcome, tuple)}
    assert {"UnexpectedCharacters", "UnexpectedToken"} <= kinds
    assert any(token[0] == "FOR" for token in _run(_parsers("text")[1], TEXT[3])[0])
