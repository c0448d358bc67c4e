from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, ClassVar

from graders._context import GradingContext
from graders._grader import Grader, GraderKind
from graders._result import GradeResult, JSONValue
from graders.expression.config import Diagnosis, ExpressionAnswer, ExpressionConfig
from graders.expression.derivation import check_derivation
from graders.expression.diagnose import Verdict, compare
from graders.expression.errors import ExpressionError, ExpressionSyntaxError, LimitExceeded
from graders.expression.evaluate import PointBatch
from graders.expression.latex_parser import parse_latex_sides
from graders.expression.latex_writer import to_latex
from graders.expression.limits import DEFAULT_LIMITS, Limits
from graders.expression.points import draw_points
from graders.expression.shapes import ShapeMismatch, settle
from graders.expression.syntax import Expr, Side, to_text
from graders.expression.text_parser import in_side, parse_text_sides


@dataclass(frozen=True, slots=True)
class Reading:
    """How an answer was read: its syntax tree and canonical text, or why it could not be."""

    expr: Expr | None
    canonical: str | None
    error: str | None = None
    position: int | None = None
    format: str = "text"
    # Set when no format was given and the detected one failed but the other read the answer.
    note: str | None = None
    # A derivation `a = b = c` has a side per formula, the answer last; a plain answer has one.
    sides: tuple[Side, ...] = ()
    # The answer was read but its declared shapes do not fit: a wrong answer, graded as such.
    shape_mismatch: bool = False


# Text never has these; every declared LaTeX spelling with a brace or a command contains one.
LATEX_MARKS = ("\\", "_{", "^{")
FORMAT_NAMES = {"latex": "LaTeX", "text": "text"}


def detect_format(expression: str, declared: str | None) -> str:
    if declared is not None:
        return declared
    return "latex" if any(mark in expression for mark in LATEX_MARKS) else "text"


def _settled_text_side(side: Side, number: int, count: int, config: ExpressionConfig, limits: Limits) -> Side:
    """A text side bounded, its names checked and its shapes too (LaTeX sides are settled by the
    parser); an earlier side's unknown names are kept as its error (it may name the quantity
    derived), the last side's raise."""
    if side.expr is None:
        return side
    try:
        # Text keeps * elementwise and @ the matrix product; the pass names mismatched shapes.
        return Side(side.start, settle(side.expr, config, limits, latex=False))
    except ExpressionError as error:
        located = in_side(error, number, side.start, count)
        if number == count or isinstance(error, LimitExceeded):
            raise located from None
        return Side(side.start, None, located)


@cache
def _limits(max_length: int) -> Limits:
    """The bounds of a question (max_length is 1 to 2,000): one immutable object per length."""
    return Limits(max_length=max_length)


def _progress(error: ExpressionError) -> int:
    """How far a reading got before it failed: parsed, then names resolved, then only shapes wrong."""
    if isinstance(error, ExpressionSyntaxError):
        return 0
    return 2 if isinstance(error, ShapeMismatch) else 1


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
        """Parse and check names; never evaluates anything.

        Without a declared format, a reading that fails in the detected format is tried in the other
        one (the failure costs the second parse, a success nothing), and the note says so.
        """
        chosen = detect_format(expression, answer_format)
        reading, failure = self._read_as(config, expression, chosen)
        if failure is None or answer_format is not None or isinstance(failure, LimitExceeded):
            return reading  # a limit holds in either format: no second parse
        other = "text" if chosen == "latex" else "latex"
        fallback, other_failure = self._read_as(config, expression, other)
        if other_failure is not None and _progress(other_failure) <= _progress(failure):
            return reading  # both fail: the error of the format that got further says more
        if other_failure is not None and not isinstance(other_failure, ShapeMismatch):
            return fallback
        note = (
            f"Read as {FORMAT_NAMES[other]}: as {FORMAT_NAMES[chosen]} it fails ({reading.error}). "
            f"Set the format to {other} to say so."
        )
        return replace(fallback, note=note)

    def _read_as(
        self, config: ExpressionConfig, expression: str, chosen: str
    ) -> tuple[Reading, ExpressionError | None]:
        """The reading in one format, and the error that stopped it, if any."""
        limits = _limits(config.max_length)
        try:
            parsed = (
                parse_latex_sides(expression, config, limits)
                if chosen == "latex"
                else parse_text_sides(expression, limits)
            )
            sides = (
                tuple(parsed)
                if chosen == "latex"
                else tuple(
                    _settled_text_side(side, number, len(parsed), config, limits)
                    for number, side in enumerate(parsed, 1)
                )
            )
        except ExpressionError as error:
            mismatch = isinstance(error, ShapeMismatch)
            return Reading(None, None, error.message, error.position, chosen, shape_mismatch=mismatch), error
        expr = sides[-1].expr
        assert expr is not None  # the last side is read or raises
        return Reading(expr, to_text(expr), format=chosen, sides=sides), None

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
            "note": reading.note,
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
        if reading.expr is None and reading.shape_mismatch:
            # Shapes that cannot fit are a mistake in the mathematics, named when the answer is read.
            message = reading.error or "The shapes do not fit."
            return GradeResult.from_fraction(
                config.partial_credit.get(Diagnosis.SHAPE, 0.0),
                message,
                {
                    "format": reading.format,
                    "diagnosis": Diagnosis.SHAPE.value,
                    "mistakes": [{"diagnosis": Diagnosis.SHAPE.value, "message": message}],
                },
            )
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
        if reading.note is not None:
            details["note"] = reading.note
        try:
            verdict = compare(reading.expr, batch, config, DEFAULT_LIMITS)
        except LimitExceeded as error:
            return GradeResult.invalid(error.message, details)
        except ExpressionError as error:
            verdict = Verdict(False, None, error.message)
        if verdict.correct:
            fraction, feedback = 1.0, "Correct."
        else:
            fraction = verdict.credit(config.partial_credit)
            feedback = verdict.feedback
            details["diagnosis"] = verdict.diagnosis.value if verdict.diagnosis else None
            if verdict.mistakes:
                details["mistakes"] = [
                    {"diagnosis": mistake.diagnosis.value, "message": mistake.note}
                    for mistake in verdict.mistakes
                ]
        if len(reading.sides) > 1 or config.derivation.graded:
            derivation = check_derivation(reading.sides, batch, config, DEFAULT_LIMITS)
            details["steps"] = derivation.details()
            fraction = derivation.fraction(config.derivation, fraction)
            feedback = derivation.feedback(feedback, verdict.correct)
        return GradeResult.from_fraction(fraction, feedback, details)

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
