"""Writing a reading back as LaTeX (the preview's `read_as_latex`): it must read back as the same tree."""

from __future__ import annotations

from graders.expression import ExpressionConfig, parse_latex
from graders.expression.syntax import Expr, Name
from tests.graders.hw5_expressions import GRADER, hw5


def config(question: str = "q2_2") -> ExpressionConfig:
    return hw5()[0][question]


def read(expression: str, answer_format: str | None = None, question: str = "q2_2") -> Expr:
    reading = GRADER.read(config(question), expression, answer_format)
    assert reading.expr is not None, reading.error
    return reading.expr


def test_components_of_declared_spellings_are_read() -> None:
    # Every component of a vector can be written in LaTeX, in each declared spelling.
    assert parse_latex(r"g_{o,t-1,2}", config()) == read("g_o[t - 1][2]", "text")
    assert parse_latex(r"g_{ot,2}", config()) == read("g_o[t][2]", "text")
    assert parse_latex(r"w_{yh,i}", config()) == read("w_yh[i]", "text")
    assert parse_latex(r"w_{yh}", config()) == Name("w_yh")
