"""Gradient checks: a hand-written backward function against torch.autograd, in float64.

Stage 0 (`reference_gradients`, outside the sandbox): at each trial's random point, the reference
forward's output, an upstream gradient `dy` of its shape drawn from the trial's rng, and the
gradients autograd gives for the `wrt` arguments (and for `dy` all ones, to recognise a backward
that ignores `dy`). Only the arguments and `dy` enter the sandbox.

Stage 2 (`gradient_outcome`): each returned gradient, named by its argument, against the
reference's (`_parts.compare_parts`, the gradients as the parts of a tuple in `wrt` order), then,
for a wrong one, the mistake where one is recognisable (a flipped sign, a transposed matrix, a
constant factor, an unsummed axis, `dy` left out). A backward that changes an argument (or `dy`)
in place earns nothing unless `allow_mutation` (`_mutation.py`). With `notebook_forward`, the
feedback also says whether the backward agrees with autograd through the student's own forward;
that is diagnostic only, the score is always anchored on the reference's gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from graders._context import GradingContext
from graders._result import JSONValue
from graders.notebook._compare import (
    CheckOutcome,
    Failure,
    FloatArray,
    Tree,
    describe,
    no_points,
    returned_value,
)
from graders.notebook._mutation import forfeits, mutated_arguments, mutation_phrase
from graders.notebook._parts import PartsComparison, compare_parts, join_names, merge_trials
from graders.notebook._session import CheckResult
from graders.notebook.config import GradientCheck

# The inputs file's member holding the upstream gradient (no forward argument may be named so).
UPSTREAM = "upstream_gradient"


@dataclass(frozen=True)
class GradientTrial:
    """One random point: the forward's arguments (float64 where floating), `dy`, and the
    reference's gradients in `wrt` order, for `dy` and for `dy` all ones."""

    inputs: dict[str, np.ndarray]
    upstream: FloatArray
    gradients: tuple[FloatArray, ...]
    ones_gradients: tuple[FloatArray, ...]


def reference_gradients(
    check: GradientCheck, context: GradingContext, rng: np.random.Generator
) -> GradientTrial:
    """The trial's point and the reference's gradients there; ValueError naming what is wrong with
    the configuration (a `wrt` name that is not an argument, a forward that is not differentiable)."""
    import torch

    drawn = dict(context.reference_function(check.inputs)(rng))
    arrays = {str(name): _float64(np.asarray(value)) for name, value in drawn.items()}
    where = f"gradient check {check.name!r}"
    if UPSTREAM in arrays:
        raise ValueError(f"{where}: no argument of {check.inputs!r} may be named {UPSTREAM!r}")
    for name in check.wrt:
        if name not in arrays:
            raise ValueError(
                f"{where}: wrt names {name!r}, which is not among the arguments of "
                f"{check.inputs!r} ({', '.join(arrays) or 'none'})"
            )
        if arrays[name].dtype.kind != "f":
            raise ValueError(f"{where}: argument {name!r} is not floating, so it has no gradient")
    tensors = {name: torch.tensor(array) for name, array in arrays.items()}
    wrt = [tensors[name].requires_grad_(True) for name in check.wrt]
    output = context.reference_function(check.forward)(*tensors.values())
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        raise ValueError(f"{where}: the forward {check.forward!r} must return one floating tensor")
    if not output.requires_grad:
        raise ValueError(f"{where}: the forward's output does not depend on {', '.join(check.wrt)}")
    upstream = np.asarray(rng.standard_normal(tuple(output.shape)), dtype=np.float64)

    def autograd(dy: Any) -> tuple[FloatArray, ...]:
        found = torch.autograd.grad(output, wrt, dy.to(output.dtype), retain_graph=True, allow_unused=True)
        for name, gradient in zip(check.wrt, found, strict=True):
            if gradient is None:
                raise ValueError(f"{where}: the forward's output does not depend on {name!r}")
        return tuple(np.asarray(gradient.detach().numpy(), dtype=np.float64) for gradient in found)

    gradients = autograd(torch.tensor(upstream))
    return GradientTrial(arrays, upstream, gradients, autograd(torch.ones_like(output)))


def _float64(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float64) if array.dtype.kind == "f" else array


def gradient_outcome(
    check: GradientCheck, trials: list[GradientTrial], results: dict[str, CheckResult], stopped: str
) -> CheckOutcome:
    rtol, atol = check.rtol, check.atol
    details: dict[str, JSONValue] = {"max_points": check.points, "rtol": rtol, "atol": atol}

    def tolerance_for(_part: str) -> tuple[float, float]:
        return rtol, atol

    comparisons: list[PartsComparison] = []
    # A wrong gradient's named mistake, seen in the first trial where it was wrong.
    mistakes: dict[str, str] = {}
    errors: dict[str, float] = {}
    mutated: list[str] = []
    own = _OwnForward()

    for trial_number, trial in enumerate(trials):
        result = results.get(f"{check.name}#{trial_number}")
        returned = returned_value(result, stopped, "result")
        if isinstance(returned, Failure):
            return no_points(check.name, check.points, details, returned.message, returned.status)
        if (
            not isinstance(returned, dict)
            or "backward" not in returned
            or set(returned) - {"backward", "autograd"}
        ):
            message = "the result could not be read (it is not a gradient check's result)."
            return no_points(check.name, check.points, details, message, "invalid")
        gradients = _as_gradients(returned["backward"], check.wrt)
        if isinstance(gradients, str):
            return no_points(check.name, check.points, details, gradients, "shape")
        called_with = [UPSTREAM, *trial.inputs]
        mutated += [name for name in mutated_arguments(result, called_with) if name not in mutated]
        comparison = compare_parts(tuple(gradients), trial.gradients, check.wrt, tolerance_for)
        comparisons.append(comparison)
        for part in comparison.parts:
            index = check.wrt.index(part.name)
            given, want = gradients[index], trial.gradients[index]
            if given.shape == want.shape and np.all(np.isfinite(given)):
                errors[part.name] = max(
                    errors.get(part.name, 0.0), float(np.max(np.abs(given - want), initial=0.0))
                )
            if part.status in ("shape", "values") and part.name not in mistakes:
                found = _named_mistake(given, want, trial.ones_gradients[index], rtol, atol)
                if found:
                    mistakes[part.name] = found
        if check.notebook_forward is not None:
            own.observe(returned.get("autograd"), gradients, trial.gradients, rtol, atol)

    merged = merge_trials(comparisons)
    problems: dict[str, str | None] = {
        part.name: None
        if part.status == "right"
        else (f"is wrong: {mistakes[part.name]}" if part.name in mistakes else part.reason)
        for part in merged.parts
    }
    right = merged.right_groups
    wrong = [name for name in check.wrt if name not in right]
    if not wrong:
        points = check.points
    elif check.part_credit:
        points = round(check.points * len(right) / len(check.wrt), 6)
    else:
        points = 0.0
    details["gradients"] = {
        name: {"status": "correct" if problems[name] is None else "wrong", "message": problems[name]}
        | ({"max_abs_error": errors[name]} if name in errors else {})
        for name in check.wrt
    }
    message = _summary(problems, right, wrong)
    if check.notebook_forward is not None:
        details["own_forward"] = own.details()
        note = own.sentence(check.notebook_forward, backward_right=not wrong)
        message = f"{message} {note}" if note else message
    status = "correct" if not wrong else "values"
    if mutated:
        shown = ["dy" if name == UPSTREAM else name for name in mutated]
        details["mutated"] = list(shown)
        message = f"{mutation_phrase(check.name, shown)} {message[0].upper()}{message[1:]}"
    if forfeits(mutated, check.allow_mutation):
        points, status = 0.0, "mutated"
    details.update(points=points, status=status)
    if status != "correct":
        details["message"] = message
    line = f"{check.name}: {points:g}/{check.points:g} - {message}"
    return CheckOutcome(check.name, points, check.points, line, details)


def _as_gradients(value: Tree, wrt: list[str]) -> list[FloatArray] | str:
    """The returned gradients in `wrt` order, or the feedback on a value of the wrong structure.
    One tensor for one argument; else a tuple or list in `wrt` order (or a dict keyed by `wrt`)."""
    due = f"{len(wrt)} gradients (for {join_names(wrt)}, in that order)"
    if isinstance(value, np.ndarray):
        return [value] if len(wrt) == 1 else f"returned one tensor, expected a tuple of {due}."
    if isinstance(value, dict):
        # The dict's own keys are text from the sandbox: feedback names only the `wrt` names.
        if missing := [name for name in wrt if name not in value]:
            keys = f"key{'s' * (len(missing) > 1)} {join_names(missing)}"
            return f"returned a dict without the {keys}, expected {due}."
        if len(value) != len(wrt):
            extra = len(value) - len(wrt)
            return f"returned a dict with {extra} keys besides {join_names(wrt)}, expected {due}."
        parts = [value[name] for name in wrt]
    else:
        parts = list(value)
        if len(parts) != len(wrt):
            expected = f"one gradient (for {wrt[0]})" if len(wrt) == 1 else due
            return f"returned {describe(value)}, expected {expected}."
    arrays = [part for part in parts if isinstance(part, np.ndarray)]
    if len(arrays) != len(parts):
        return f"returned {describe(value)} whose parts are not all tensors, expected {due}."
    return arrays


def _named_mistake(
    given: FloatArray, want: FloatArray, ones: FloatArray, rtol: float, atol: float
) -> str | None:
    """The recognisable mistake behind a wrong gradient (`compare_parts` found it wrong), or None:
    a transposed, unsummed or reshaped result, a flipped sign, `dy` ignored, a constant factor."""

    def close(a: FloatArray, b: FloatArray) -> bool:
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))

    if want.shape == () and given.size == 1:
        given = given.reshape(())  # a scalar's gradient may come back as a 1-element tensor
    if not np.all(np.isfinite(given)):
        return None
    shapes = f"shape {tuple(given.shape)} where {tuple(want.shape)} is due"
    if given.shape != want.shape:
        if given.ndim == 2 and close(given.T, want):
            return f"it is transposed ({shapes})"
        for axis in range(given.ndim):
            # Only a sum of the due shape: a (0, 10**15) array sums to 10**15 zeros over axis 0.
            if given.shape[:axis] + given.shape[axis + 1 :] == want.shape and close(
                given.sum(axis=axis), want
            ):
                return f"it is not summed over axis {axis} ({shapes})"
        if given.size == want.size and close(given.reshape(want.shape), want):
            return f"its values are right but its shape is not ({shapes})"
        return None
    if close(given, -want):
        return "its sign is flipped"
    if given.ndim == 2 and given.shape[0] == given.shape[1] and close(given.T, want):
        return "it is transposed"
    if close(given, ones) and not close(ones, want):
        return "it is the gradient for an upstream gradient of all ones: multiply by dy"
    scale = float(np.sum(want * want))
    # A gradient of values near the float64 limit overflows this projection: it is no factor then.
    with np.errstate(over="ignore", invalid="ignore"):
        factor = float(np.sum(given * want)) / scale if scale > 0 else math.nan
        scaled = math.isfinite(factor) and close(given, factor * want)
    if scaled:
        return f"it is off by a constant factor ({factor:.3g} times the right gradient)"
    if not np.any(given) and np.any(want):
        return "it is all zeros"
    return None


def _summary(problems: dict[str, str | None], right: list[str], wrong: list[str]) -> str:
    if not wrong:
        return "correct."
    said = [f"the gradient for {name} {problems[name]}" for name in wrong]
    if len(right) == 1:
        said.append(f"the gradient for {right[0]} is right")
    elif right:
        said.append(f"the gradients for {join_names(right)} are right")
    text = "; ".join(said) + "."
    return text[0].upper() + text[1:]


class _OwnForward:
    """What autograd through the notebook's own forward says, over all trials (diagnostic only)."""

    def __init__(self) -> None:
        self.available = True
        self.backward_agrees = True
        self.forward_agrees = True

    def observe(
        self,
        value: Tree | None,
        backward: list[FloatArray],
        reference: tuple[FloatArray, ...],
        rtol: float,
        atol: float,
    ) -> None:
        parts = list(value) if isinstance(value, tuple | list) else []
        own = [part for part in parts if isinstance(part, np.ndarray)]
        shapes = [gradient.shape for gradient in reference]
        if len(parts) != len(reference) or [part.shape for part in own] != shapes:
            self.available = False
            return

        def agree(left: Sequence[FloatArray], right: Sequence[FloatArray]) -> bool:
            return all(
                a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))
                for a, b in zip(left, right, strict=True)
            )

        self.backward_agrees &= agree(backward, own)
        self.forward_agrees &= agree(own, reference)

    def details(self) -> dict[str, JSONValue]:
        if not self.available:
            return {"available": False}
        return {
            "available": True,
            "backward_agrees_with_own_forward": self.backward_agrees,
            "own_forward_agrees_with_reference": self.forward_agrees,
        }

    def sentence(self, forward: str, backward_right: bool) -> str:
        if not self.available:
            return (
                f"(Autograd through your {forward} could not be compared: it is missing, raised an "
                "error, or is not differentiable for these arguments.)"
            )
        if backward_right:
            return "" if self.forward_agrees else f"(Autograd through your {forward} differs: check it.)"
        if self.backward_agrees:
            return (
                f"Your backward matches autograd through your own {forward}, but not the reference: "
                f"{forward} itself is wrong."
            )
        if self.forward_agrees:
            return f"Autograd through your {forward} gives the right gradients: the backward is at fault."
        return f"It does not match autograd through your own {forward} either, and {forward} is wrong too."
