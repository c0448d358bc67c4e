"""Gradient expressions typed as text or LaTeX, parsed without eval and checked numerically."""

from graders.expression.config import (
    DerivationConfig,
    Diagnosis,
    ExpressionAnswer,
    ExpressionConfig,
    IndexRange,
    SymbolDeclaration,
)
from graders.expression.errors import ExpressionError, ExpressionSyntaxError, LimitExceeded
from graders.expression.grader import ExpressionGrader, Reading
from graders.expression.latex_parser import parse_latex, parse_latex_steps
from graders.expression.latex_writer import to_latex
from graders.expression.syntax import Expr, to_text
from graders.expression.text_parser import parse_text, parse_text_steps

__all__ = [
    "DerivationConfig",
    "Diagnosis",
    "Expr",
    "ExpressionAnswer",
    "ExpressionConfig",
    "ExpressionError",
    "ExpressionGrader",
    "ExpressionSyntaxError",
    "IndexRange",
    "LimitExceeded",
    "Reading",
    "SymbolDeclaration",
    "parse_latex",
    "parse_latex_steps",
    "parse_text",
    "parse_text_steps",
    "to_latex",
    "to_text",
]
