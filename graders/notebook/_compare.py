"""Stage 2 of notebook grading, outside the sandbox: each check's result against the reference."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from graders._context import GradingContext
from graders._result import JSONValue
from graders.notebook._session import CheckResult
from graders.notebook.config import ClassifierCheck, FunctionCheck

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


def load_array(payload: bytes) -> FloatArray:
    """One .npy array from the sandbox: never unpickled, always a float64 array."""
    array = np.load(io.BytesIO(payload), allow_pickle=False)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ValueError("the result is not a numeric array")
    return np.asarray(array, dtype=np.float64)


def as_numpy(value: Any) -> FloatArray:
    detach = getattr(value, "detach", None)
    if detach is not None:
        value = detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


@dataclass
class CheckOutcome:
    name: str
    points: float
    max_points: float
    line: str
    details: dict[str, JSONValue] = field(default_factory=dict)


def function_outcome(
    check: FunctionCheck,
    expected: dict[str, tuple[dict[str, Any], FloatArray]],
    results: dict[str, CheckResult],
    context: GradingContext,
    stopped: str,
) -> CheckOutcome:
    device = context.device
    factor = check.cuda_tolerance_factor if device.startswith("cuda") else 1.0
    rtol, atol = check.rtol * factor, check.atol * factor
    details: dict[str, JSONValue] = {"max_points": check.points, "rtol": rtol, "atol": atol}

    def failed(message: str, status: str) -> CheckOutcome:
        return _no_points(check.name, check.points, details, message, status)

    for trial in range(check.trials):
        check_id = f"{check.name}#{trial}"
        given = _returned_array(results.get(check_id), stopped, "result")
        if isinstance(given, tuple):
            return failed(*given)
        inputs, want = expected[check_id]
        if want.shape == () and given.size == 1:
            given = given.reshape(())  # a scalar may come back as a 1-element tensor
        if given.shape != want.shape:
            return failed(f"wrong shape: expected {tuple(want.shape)}, got {tuple(given.shape)}.", "shape")
        if not np.all(np.isfinite(given)):
            return failed("the result holds NaN or infinite values.", "values")
        if not np.allclose(given, want, rtol=rtol, atol=atol):
            error_size = float(np.max(np.abs(given - want)))
            details["max_abs_error"] = error_size
            hint = _named_mistake(check, context, inputs, given, rtol, atol)
            message = f"wrong values: the largest difference is {error_size:.3g} "
            message += f"(atol {atol:g}, rtol {rtol:g})."
            return failed(f"{message} {hint}" if hint else message, "values")
    details.update(points=check.points, status="correct")
    return CheckOutcome(
        check.name,
        check.points,
        check.points,
        f"{check.name}: {check.points:g}/{check.points:g} - correct.",
        details,
    )


def classifier_outcome(
    check: ClassifierCheck, labels: npt.NDArray[np.int64], results: dict[str, CheckResult], stopped: str
) -> CheckOutcome:
    details: dict[str, JSONValue] = {
        "max_points": check.points,
        "zero_at": check.zero_at,
        "full_at": check.full_at,
    }

    def failed(message: str, status: str) -> CheckOutcome:
        return _no_points(check.name, check.points, details, message, status)

    logits = _returned_array(results.get(check.name), stopped, "output")
    if isinstance(logits, tuple):
        return failed(*logits)
    if logits.shape != (len(labels), check.classes):
        return failed(
            f"the model returned shape {tuple(logits.shape)}, not (batch, {check.classes}).", "shape"
        )
    if not np.all(np.isfinite(logits)):
        return failed("the model's outputs hold NaN or infinite values.", "values")
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
    fraction = min(max((accuracy - check.zero_at) / (check.full_at - check.zero_at), 0.0), 1.0)
    points = round(fraction * check.points, 6)
    details.update(points=points, status="scored", accuracy=accuracy)
    line = (
        f"{check.name}: {points:g}/{check.points:g} - accuracy {accuracy:.1%} on {len(labels)} "
        f"hidden test sequences (0 points at {check.zero_at:.0%} or less, "
        f"all at {check.full_at:.0%} or more)."
    )
    return CheckOutcome(check.name, points, check.points, line, details)


def _returned_array(result: CheckResult | None, stopped: str, what: str) -> FloatArray | tuple[str, str]:
    """The array a check returned, or the feedback and the status of why there is none."""
    if result is None:
        return f"not run: the run was stopped by {stopped}.", "not_run"
    if result.status != "ok":
        return _failure(result)
    try:
        return load_array(result.payload)
    except ValueError as error:
        return f"the {what} could not be read as a tensor ({error}).", "error"


def _no_points(
    name: str, max_points: float, details: dict[str, JSONValue], message: str, status: str
) -> CheckOutcome:
    """The outcome of a check that earned nothing, saying why."""
    details.update(points=0.0, status=status, message=message)
    return CheckOutcome(name, 0.0, max_points, f"{name}: 0/{max_points:g} - {message}", details)


def _failure(result: CheckResult) -> tuple[str, str]:
    """The feedback and the status of a check that returned no result."""
    if result.status == "timeout":
        return f"{result.message}.", "timeout"
    if result.status == "invalid":
        return f"{result.message}.", "invalid"
    error = result.message or "failed"
    return (error if error.startswith(("returned", "the call")) else f"raised {error}"), "error"


def _named_mistake(
    check: FunctionCheck,
    context: GradingContext,
    inputs: dict[str, Any],
    given: FloatArray,
    rtol: float,
    atol: float,
) -> str:
    """The feedback of the first named mistake whose output the student's matches, or ""."""
    for mistake in check.mistakes:
        try:
            wrong = as_numpy(context.reference_function(mistake.reference)(*torch_arguments(inputs)))
        except Exception:
            logger.exception("named mistake %s failed", mistake.reference)
            continue
        if wrong.shape == given.shape and np.allclose(given, wrong, rtol=rtol, atol=atol):
            return mistake.feedback
    return ""


def torch_arguments(arrays: dict[str, Any]) -> list[Any]:
    import torch

    return [torch.as_tensor(np.asarray(value)) for value in arrays.values()]
