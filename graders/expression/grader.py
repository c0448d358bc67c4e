from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from graders._context import GradingContext
from graders._grader import Grader, GraderKind
from graders._result import GradeResult, JSONValue
from graders.expression.config import ExpressionAnswer, ExpressionConfig
from graders.expression.diagnose import compare
from graders.expression.errors import ExpressionError, LimitExceeded
from graders.expression.evaluate import PointBatch, check_names
from graders.expression.latex_parser import parse_latex
from graders.expression.latex_writer import to_latex
from graders.expression.limits import DEFAULT_LIMITS, Limits
from graders.expression.points import draw_points
from graders.expression.syntax import Expr, node_count, to_text
from graders.expression.text_parser import parse_derivation


@dataclass(frozen=True, slots=True)
class Reading:
    """How an answer was read: its syntax tree and canonical text, or why it could not be."""

    expr: Expr | None
    canonical: str | None
    error: str | None = None
    position: int | None = None
    format: str = "text"


def detect_format(expression: str, declared: str | None) -> str:
    if declared is not None:
        return declared
    return "latex" if "\\" in expression else "text"


class ExpressionGrader(Grader[ExpressionConfig, ExpressionAnswer]):
    """Formulas, typed as text or LaTeX, checked numerically against a torch.autograd reference."""

    kind: ClassVar[GraderKind] = GraderKind.EXPRESSION
    version: ClassVar[str] = "1"
    config_model = ExpressionConfig
    answer_model = ExpressionAnswer

    def __init__(self) -> None:
        # Keyed by the config object and the reference function: configs are immutable and callers
        # (the service's version snapshots) reuse one object per question.
        self._points: dict[tuple[int, int], tuple[ExpressionConfig, Callable[..., Any], PointBatch]] = {}
        self._lock = threading.Lock()

    def read(self, config: ExpressionConfig, expression: str, answer_format: str | None = None) -> Reading:
        """Parse and check names; never evaluates anything."""
        chosen = detect_format(expression, answer_format)
        limits = Limits(max_length=config.max_length)
        try:
            expr = (
                parse_latex(expression, config, limits)
                if chosen == "latex"
                else parse_derivation(expression, limits)
            )
            if node_count(expr) > limits.max_nodes:
                raise LimitExceeded(f"The answer has more than {limits.max_nodes} parts.")
            check_names(expr, config)
        except ExpressionError as error:
            return Reading(None, None, error.message, error.position, chosen)
        return Reading(expr, to_text(expr), format=chosen)

    def preview(self, config: ExpressionConfig, raw_answer: object) -> dict[str, JSONValue]:
        answer = self.parse_answer(raw_answer)
        reading = self.read(config, answer.expression, answer.format)
        return {
            "format": reading.format,
            "ok": reading.expr is not None,
            "read_as": reading.canonical,
            "read_as_latex": None if reading.expr is None else to_latex(reading.expr, config),
            "error": reading.error,
            "position": reading.position,
        }

    def points_for(self, config: ExpressionConfig, context: GradingContext) -> PointBatch:
        """The points of a question: drawn once per process and config (the reference is slow)."""
        reference = context.reference_function(config.reference)
        key = (id(config), id(reference))
        with self._lock:
            entry = self._points.get(key)
            if entry is not None and entry[0] is config and entry[1] is reference:
                return entry[2]
            batch = draw_points(config, reference)
            if len(self._points) > 256:
                self._points.clear()
            self._points[key] = (config, reference, batch)
        return batch

    def grade(
        self, config: ExpressionConfig, answer: ExpressionAnswer, context: GradingContext
    ) -> GradeResult:
        reading = self.read(config, answer.expression, answer.format)
        if reading.expr is None:
            where = f" (at position {reading.position + 1})" if reading.position is not None else ""
            return GradeResult.invalid(f"{reading.error}{where}", {"format": reading.format})
        batch = self.points_for(config, context)
        details: dict[str, JSONValue] = {
            "read_as": reading.canonical,
            "read_as_latex": to_latex(reading.expr, config),
            "format": reading.format,
            "points": batch.size,
        }
        try:
            verdict = compare(reading.expr, batch, config, DEFAULT_LIMITS)
        except LimitExceeded as error:
            return GradeResult.invalid(error.message, details)
        except ExpressionError as error:
            return GradeResult.from_fraction(0.0, error.message, details)
        if verdict.correct:
            return GradeResult.from_fraction(1.0, "Correct.", details)
        fraction = config.partial_credit.get(verdict.diagnosis, 0.0) if verdict.diagnosis else 0.0
        details["diagnosis"] = verdict.diagnosis.value if verdict.diagnosis else None
        return GradeResult.from_fraction(fraction, verdict.feedback, details)

    def public_config(self, config: ExpressionConfig) -> dict[str, JSONValue]:
        return {
            "symbols": [
                {
                    "name": symbol.name,
                    "shape": list(symbol.shape),
                    "sequence": symbol.sequence,
                    "latex": list(symbol.latex),
                    "meaning": symbol.meaning,
                }
                for symbol in config.symbols
            ],
            "indices": [index.model_dump() for index in config.indices],
            "index_names": list(config.index_names),
            "functions": list(config.functions),
            "formats": ["text", "latex"],
        }

    def reference_names(self, config: ExpressionConfig) -> list[str]:
        return [config.reference]

    def self_check(self, config: ExpressionConfig, context: GradingContext) -> None:
        batch = draw_points(config, context.reference_function(config.reference))
        for declaration in config.symbols:
            data = batch.symbols[declaration.name]
            expected_rank = int(declaration.sequence) + len(declaration.shape) + 1
            if data.ndim != expected_rank:
                raise ValueError(
                    f"symbol {declaration.name!r} has {data.ndim - 1} axes in the reference, "
                    f"{expected_rank - 1} declared"
                )
