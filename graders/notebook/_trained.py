"""Stage 2 for trained models (classifiers, regression and sequence models): their outputs
against the hidden labels or targets.

The targets never entered the sandbox (`_plan.py` keeps them here); the model's outputs come out
of it as untrusted data: their shape is checked against the targets', NaN and infinite values are
named, and the metric is computed here, in float64, from the outputs alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from graders._result import JSONValue
from graders.notebook._compare import (
    CheckOutcome,
    Failure,
    FloatArray,
    no_points,
    returned_value,
    threshold_points,
)
from graders.notebook._session import CheckResult
from graders.notebook.config import ClassifierCheck, RegressionCheck, SequenceCheck

METRIC_NAMES = {"mse": "MSE", "mae": "MAE"}
# A perplexity is reported as at most exp(this): the largest float64 is about exp(709.8).
MAX_LOG_PERPLEXITY = 700.0
# Perplexities below this are written with three decimals, larger ones with four significant digits.
PERPLEXITY_DECIMALS_BELOW = 1000.0


# What a model whose outputs hold NaN or infinite values gets.
NONFINITE = Failure("the model's outputs hold NaN or infinite values.", "values")


@dataclass(frozen=True, slots=True)
class Measured:
    """A trained model's metric from its outputs: the value its points follow, the feedback after
    the points, and what the check's details keep of it."""

    value: float
    summary: str
    details: dict[str, JSONValue] = field(default_factory=dict)


def _model_outcome(
    check: ClassifierCheck | RegressionCheck | SequenceCheck,
    results: dict[str, CheckResult],
    stopped: str,
    what: str,
    measure: Callable[[FloatArray], Measured | Failure],
) -> CheckOutcome:
    """A trained model's outcome: its one tensor of `what` ("logits", "predictions") measured, and
    its points linear in the metric between `zero_at` and `full_at`."""
    details: dict[str, JSONValue] = {"max_points": check.points}
    if not isinstance(check, ClassifierCheck):
        details["metric"] = check.metric
    details.update(zero_at=check.zero_at, full_at=check.full_at)
    outputs = returned_value(results.get(check.name), stopped, "output")
    if not isinstance(outputs, Failure | np.ndarray):
        outputs = Failure(f"the model returned a structure, not one tensor of {what}.", "shape")
    measured = outputs if isinstance(outputs, Failure) else measure(outputs)
    if isinstance(measured, Failure):
        return no_points(check.name, check.points, details, measured.message, measured.status)
    points = threshold_points(measured.value, check.zero_at, check.full_at, check.points)
    details.update(measured.details)
    details.update(points=points, status="scored")
    line = f"{check.name}: {points:g}/{check.points:g} - {measured.summary}"
    return CheckOutcome(check.name, points, check.points, line, details)


def classifier_outcome(
    check: ClassifierCheck, labels: npt.NDArray[np.int64], results: dict[str, CheckResult], stopped: str
) -> CheckOutcome:
    def measure(logits: FloatArray) -> Measured | Failure:
        if logits.shape != (len(labels), check.classes):
            shape = tuple(logits.shape)
            return Failure(f"the model returned shape {shape}, not (batch, {check.classes}).", "shape")
        if not np.all(np.isfinite(logits)):
            return NONFINITE
        accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
        summary = (
            f"accuracy {accuracy:.1%} on {len(labels)} hidden test sequences (0 points at "
            f"{check.zero_at:.0%} or less, all at {check.full_at:.0%} or more)."
        )
        return Measured(accuracy, summary, {"accuracy": accuracy})

    return _model_outcome(check, results, stopped, "logits", measure)


def regression_outcome(
    check: RegressionCheck, targets: FloatArray, results: dict[str, CheckResult], stopped: str
) -> CheckOutcome:
    metric = METRIC_NAMES[check.metric]

    def measure(outputs: FloatArray) -> Measured | Failure:
        predictions = _in_targets_shape(outputs, targets.shape)
        if predictions is None:
            return Failure(
                f"the model returned shape {tuple(outputs.shape)}, not {_due_shapes(targets.shape)} "
                "like the targets.",
                "shape",
            )
        if not np.all(np.isfinite(predictions)):
            return NONFINITE
        with np.errstate(over="ignore"):
            differences = predictions - targets
            error = float(np.mean(differences**2) if check.metric == "mse" else np.mean(np.abs(differences)))
        if not math.isfinite(error):
            return Failure(f"the model's outputs are too large: their {metric} overflows float64.", "values")
        summary = (
            f"{metric} {error:.4g} on {len(targets)} hidden test examples (all points at "
            f"{check.full_at:g} or less, none at {check.zero_at:g} or more)."
        )
        return Measured(error, summary, {check.metric: error})

    return _model_outcome(check, results, stopped, "predictions", measure)


def _in_targets_shape(outputs: FloatArray, shape: tuple[int, ...]) -> FloatArray | None:
    """The predictions in the targets' shape, or None. One column and none are the same thing
    here: a model ending in Linear(..., 1) answers (N, 1) for targets of shape (N,)."""
    if outputs.shape == shape:
        return outputs
    one_column = {(shape[0],), (shape[0], 1)}
    if outputs.shape in one_column and shape in one_column:
        return outputs.reshape(shape)
    return None


def _due_shapes(shape: tuple[int, ...]) -> str:
    if shape in {(shape[0],), (shape[0], 1)}:
        return f"({shape[0]},) or ({shape[0]}, 1)"
    return str(tuple(shape))


def sequence_outcome(
    check: SequenceCheck, targets: npt.NDArray[np.int64], results: dict[str, CheckResult], stopped: str
) -> CheckOutcome:
    sequences, steps = targets.shape
    due = (sequences, steps, check.vocabulary)

    def measure(logits: FloatArray) -> Measured | Failure:
        if logits.shape != due:
            message = (
                f"the model returned shape {tuple(logits.shape)}, not (batch, time, vocabulary) = {due}."
            )
            return Failure(f"{message}{_shape_hint(tuple(logits.shape), due)}", "shape")
        if not np.all(np.isfinite(logits)):
            return NONFINITE
        accuracy = float(np.mean(np.argmax(logits, axis=-1) == targets))
        perplexity = math.exp(min(mean_cross_entropy(logits, targets), MAX_LOG_PERPLEXITY))
        where = f"on {targets.size} tokens of {sequences} hidden test sequences"
        measured: dict[str, JSONValue] = {"accuracy": accuracy, "perplexity": perplexity}
        if check.metric == "accuracy":
            summary = (
                f"per-token accuracy {accuracy:.1%} {where} (0 points at {check.zero_at:.0%} or less, "
                f"all at {check.full_at:.0%} or more)."
            )
            return Measured(accuracy, summary, measured)
        summary = (
            f"perplexity {_perplexity_text(perplexity)} {where} (all points at {check.full_at:g} or less, "
            f"none at {check.zero_at:g} or more)."
        )
        return Measured(perplexity, summary, measured)

    return _model_outcome(check, results, stopped, "logits", measure)


def _perplexity_text(perplexity: float) -> str:
    """Three decimals near 1, where they matter (1.004 is not a perfect 1); significant digits above."""
    return f"{perplexity:.3f}" if perplexity < PERPLEXITY_DECIMALS_BELOW else f"{perplexity:.4g}"


def _shape_hint(shape: tuple[int, ...], due: tuple[int, int, int]) -> str:
    sequences, steps, vocabulary = due
    if shape == (sequences, vocabulary, steps):
        return (
            " The vocabulary is on axis 1 (the layout cross_entropy takes): "
            "return (batch, time, vocabulary), e.g. logits.transpose(1, 2)."
        )
    if shape == (sequences * steps, vocabulary):
        return " The time steps are flattened into the batch: return (batch, time, vocabulary)."
    return ""


def mean_cross_entropy(logits: FloatArray, targets: npt.NDArray[np.int64]) -> float:
    """The mean over tokens of -log softmax(logits)[target], computed stably: the largest logit of
    each token is subtracted first, so exp never overflows (the sum it takes is at least 1)."""
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_normalisers = np.log(np.exp(shifted).sum(axis=-1))
        picked = np.take_along_axis(shifted, targets[..., None], axis=-1)[..., 0]
        return float(np.mean(log_normalisers - picked))
