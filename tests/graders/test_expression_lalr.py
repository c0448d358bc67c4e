"""The LALR driver (graders/expression/lalr.py) against lark's own parser, on both grammars.

On every answer of the lexer's cases (the SPEC's formulas, the hand-in, the hostile inputs, the
notation corpus, keyword, newline and error cases), in both grammars: where lark parses, the driver
gives the same tree by itself (without handing the text to lark); where lark raises, the driver
leaves its fast path, and `parse` raises lark's error.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from lark import Lark
from lark.exceptions import UnexpectedInput

from graders.expression import latex_parser, text_parser
from graders.expression.lalr import FastLALR
from tests.graders.test_expression_lexing import _case_id, _cases


@cache
def _parsers(grammar: str) -> tuple[FastLALR, Lark]:
    module: Any = text_parser if grammar == "text" else latex_parser
    return module._parser(), module.make_parser(fast=False)  # the driver the grammar uses


def _outcome(parse: Any, text: str) -> object:
    try:
        return ("tree", parse(text))
    except UnexpectedInput as error:
        wrong = getattr(error, "token", None)
        shown = None if wrong is None else (wrong.type, str(wrong), wrong.start_pos)
        expected = getattr(error, "expected", None) or getattr(error, "allowed", None)
        return (type(error).__name__, error.pos_in_stream, error.line, error.column, shown, expected)
    except Exception as error:  # e.g. a callback's error: the same as lark's
        return (type(error).__name__, str(error))


@pytest.mark.parametrize(("grammar", "answer"), _cases(), ids=_case_id)
def test_driver_gives_lark_result(grammar: str, answer: str) -> None:
    fast, stock = _parsers(grammar)
    text = latex_parser.normalise(answer) if grammar == "latex" and answer.isascii() else answer
    expected = _outcome(stock.parse, text)
    try:
        assert _outcome(fast.parse, text) == expected
    except RecursionError:  # a deep tree (hostile input) cannot be compared
        return
    if isinstance(expected, tuple) and expected[0] == "tree":
        # Read by the fast path itself, not by lark after a fallback.
        try:
            assert fast._parse(text)[0] == expected[1]
        except RecursionError:
            return
    else:
        with pytest.raises(Exception):  # noqa: B017, PT011 - any: the fast path gives up
            fast._parse(text)


def test_unit_rules_are_skipped() -> None:
    fast, _stock = _parsers("text")
    reductions = {id(action): action for actions in fast._actions.values() for action in actions.values()}
    units = [action for action in reductions.values() if isinstance(action, tuple) and action[1] is None]
    assert units  # ?sum: product and the like


@pytest.mark.parametrize(
    ("answer", "noted"),
    [
        ("x + for", True),
        ("range(3) + in", True),
        ("forx + inrange", False),
        ("sum(x[k] for k in range(3))", False),
    ],
)
def test_driver_notes_names_spelled_like_keywords(answer: str, noted: bool) -> None:
    fast, _stock = _parsers("text")
    assert fast._parse(answer, "NAME", text_parser.KEYWORDS)[1] is noted
