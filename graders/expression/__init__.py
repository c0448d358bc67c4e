"""Gradient expressions typed as text or LaTeX, parsed without eval and checked numerically."""

from graders.expression.config import (
    Diagnosis,
    ExpressionAnswer,
    ExpressionConfig,
    IndexRange,
    SymbolDeclaration,
)
from graders.expression.errors import ExpressionError, ExpressionSyntaxError, LimitExceeded
from graders.expression.grader import ExpressionGrader, Reading
from graders.expression.latex_parser import parse_latex
from graders.expression.latex_writer import to_latex
from graders.expression.syntax import Expr, to_text
from graders.expression.text_parser import parse_text

__all__ = [
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
    "parse_text",
    "to_latex",
    "to_text",
]
