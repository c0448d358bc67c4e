"""Module checks outside the sandbox: the reference module's trial (stage 0) and its outcome (stage 2).

A trial builds the reference class with the check's `init` from a seed, draws the forward's
arguments and, with `backward`, the weights of the fixed loss `sum_i (output_i * weights_i).sum()`
over the output's parts. The arguments, the reference's parameters and the loss weights enter the
sandbox (they are not secret: the parameters come from a seed, not from training); the expected
output and gradients never do. The runner (`_runner.call_module`) copies the parameters into the
notebook's module, runs the forward and the same loss, and returns
`{"output": ..., "gradients": {reference parameter name: gradient}, "parameters": count}`.

The forward output earns the check's points, or half of them with `backward = true` (the
parameter gradients, all right, the other half); a part must be right in every trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graders._context import GradingContext
from graders._result import JSONValue
from graders.notebook._compare import (
    CheckOutcome,
    Failure,
    FloatArray,
    Tree,
    _no_points,
    _returned_value,
    as_tree,
    describe,
    tree_size,
)
from graders.notebook._mutation import mutated_arguments
from graders.notebook._session import CheckResult
from graders.notebook._wire import MAX_LAYOUT_PARTS, MAX_NAME_CHARS
from graders.notebook.config import ModuleCheck

# What the runner puts in front of the message of a module it could not set up (not a Module
# class, a constructor that raised, parameters that do not fit): feedback as it stands.
MISMATCH_PREFIX = "ModuleMismatch: "
# The result holds the output's parts, one gradient per parameter and the count; room for both.
MAX_MODULE_PARAMETERS = MAX_LAYOUT_PARTS // 2
# A path to one part of a forward output: positions in tuples and lists, keys in dicts.
PartPath = list[int | str]


@dataclass
class ModuleTrial:
    """One trial of a module check: what enters the sandbox and what it is compared with here."""

    # The inputs file: forward arguments a0.., reference parameters p0.., loss weights w0...
    arrays: dict[str, Any]
    # The runner's fields of the plan entry: argument and parameter names, the loss parts' paths.
    entry: dict[str, Any]
    output: Tree
    gradients: dict[str, FloatArray]
    parameter_count: int


def module_trial(check: ModuleCheck, rng: np.random.Generator, context: GradingContext) -> ModuleTrial:
    """Build the reference module (seeded from rng), run it on `inputs(rng)`, and with `backward`
    take the gradients of the fixed loss. Raises ValueError on a reference that cannot do this."""
    import torch

    reference_class = context.reference_function(check.reference)
    if not (isinstance(reference_class, type) and issubclass(reference_class, torch.nn.Module)):
        raise ValueError(f"{check.reference!r} is not a torch.nn.Module subclass")
    raw_inputs = context.reference_function(check.inputs)(rng)
    if not isinstance(raw_inputs, dict) or not all(isinstance(key, str) for key in raw_inputs):
        raise ValueError(f"{check.inputs!r} must return a dict of the forward's keyword arguments")
    arguments = {name: _float32(np.asarray(value)) for name, value in raw_inputs.items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**63)))
        module = reference_class(**check.init)
    module.eval()  # dropout off, batch norm on its running statistics: the same on both sides
    parameters = list(module.named_parameters())
    if len(parameters) > MAX_MODULE_PARAMETERS:
        raise ValueError(f"{check.reference!r} has more than {MAX_MODULE_PARAMETERS} parameter tensors")
    if any(len(name) > MAX_NAME_CHARS for name, _ in parameters):
        raise ValueError(f"{check.reference!r} has a parameter name longer than {MAX_NAME_CHARS} characters")
    # Copies: a reference forward that changes an argument in place must not change what ships.
    output = module(**{name: torch.tensor(value) for name, value in arguments.items()})
    want = as_tree(output)
    arrays = {f"a{index}": value for index, value in enumerate(arguments.values())}
    arrays |= {f"p{index}": p.detach().numpy().copy() for index, (_, p) in enumerate(parameters)}
    loss_paths: list[PartPath] = []
    gradients: dict[str, FloatArray] = {}
    if check.backward:
        leaves = _tensor_leaves(output, [])
        loss = torch.zeros(())
        for index, (path, tensor) in enumerate(leaves):
            weights = rng.standard_normal(tuple(tensor.shape)).astype(np.float32)
            arrays[f"w{index}"] = weights
            loss_paths.append(path)
            loss = loss + (tensor * torch.as_tensor(weights)).sum()
        grads = torch.autograd.grad(loss, [p for _, p in parameters], allow_unused=True)
        gradients = {
            name: np.zeros(tuple(p.shape)) if grad is None else grad.detach().numpy().astype(np.float64)
            for (name, p), grad in zip(parameters, grads, strict=True)
        }
    entry = {
        "init": dict(check.init),
        "args": list(arguments),
        "parameters": [name for name, _ in parameters],
        "backward": check.backward,
        "loss_parts": loss_paths,
    }
    count = sum(int(p.numel()) for _, p in parameters)
    return ModuleTrial(arrays, entry, want, gradients, count)


def module_result_elements(trial: ModuleTrial, wrong_shape_factor: int, extra: int) -> int:
    """How many values the runner's result may hold: the output with room for a wrong shape, the
    gradients and the count."""
    return (
        wrong_shape_factor * tree_size(trial.output) + sum(g.size for g in trial.gradients.values()) + extra
    )


def _float32(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Float arguments as float32 (modules' parameters are); integer ones (token ids) as they are."""
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _tensor_leaves(value: Any, path: PartPath) -> list[tuple[PartPath, Any]]:
    """A forward output's tensors with their paths, in order."""
    if isinstance(value, tuple | list):
        return [leaf for index, part in enumerate(value) for leaf in _tensor_leaves(part, [*path, index])]
    if isinstance(value, dict):
        return [leaf for key, part in value.items() for leaf in _tensor_leaves(part, [*path, str(key)])]
    return [(path, value)]


# --- Part-by-part comparison. Kept small and separate: the function checks' part comparer
# (graders/notebook/_parts.py, written in parallel) is meant to replace it when the two meet.


@dataclass(frozen=True, slots=True)
class PartMismatch:
    """One part that is not right: its name in feedback, why, and the largest difference if any."""

    part: str
    reason: str
    error: float | None = None


def compare_parts(
    want: Tree, got: Tree, rtol: float, atol: float, label: str, names: list[str] | None = None
) -> list[PartMismatch]:
    """The parts of `got` that differ from `want` (empty: all right). Tuples and lists are
    compared by position, dicts by key; the top level's parts are named by `names` (a tuple's),
    their keys (a dict's) or their positions, deeper ones by their path from there."""
    return _walk(want, got, rtol, atol, label, names, top=True)


def _walk(
    want: Tree, got: Tree, rtol: float, atol: float, label: str, names: list[str] | None, top: bool
) -> list[PartMismatch]:
    if isinstance(want, np.ndarray):
        if not isinstance(got, np.ndarray):
            return [PartMismatch(label, f"is {describe(got)}, expected {describe(want)}")]
        return _compare_leaf(want, got, rtol, atol, label)
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [PartMismatch(label, f"is {describe(got)}, expected {describe(want)}")]
        mismatches = []
        for key, part in want.items():
            name = key if top else f"{label}[{key!r}]"
            given = got.get(key)
            if given is None:
                mismatches.append(PartMismatch(name, "is missing"))
            else:
                mismatches += _walk(part, given, rtol, atol, name, None, top=False)
        return mismatches
    if not isinstance(got, tuple | list) or len(got) != len(want):
        return [PartMismatch(label, f"is {describe(got)}, expected {describe(want)}")]
    mismatches = []
    for index, (part, given) in enumerate(zip(want, got, strict=True)):
        if not top:
            name = f"{label}[{index}]"
        elif names is not None and index < len(names):
            name = names[index]
        else:
            name = f"part {index}"
        mismatches += _walk(part, given, rtol, atol, name, None, top=False)
    return mismatches


def _compare_leaf(
    want: FloatArray, got: FloatArray, rtol: float, atol: float, label: str
) -> list[PartMismatch]:
    if want.shape == () and got.size == 1:
        got = got.reshape(())  # a scalar may come back as a 1-element tensor
    if got.shape != want.shape:
        return [PartMismatch(label, f"has shape {tuple(got.shape)}, expected {tuple(want.shape)}")]
    if not np.all(np.isfinite(got)):
        return [PartMismatch(label, "holds NaN or infinite values")]
    if np.allclose(got, want, rtol=rtol, atol=atol):
        return []
    error = float(np.max(np.abs(got - want)))
    return [PartMismatch(label, f"is wrong (largest difference {error:.3g})", error)]


# --- Stage 2: the outcome of a module check.


@dataclass
class _Findings:
    """What the trials showed, aspect by aspect (the first trial where an aspect went wrong)."""

    forward: list[PartMismatch] = field(default_factory=list)
    gradients: list[PartMismatch] = field(default_factory=list)
    gradients_skipped: bool = False
    parameter_count: int | None = None
    mutated: tuple[str, ...] = ()


def module_outcome(
    check: ModuleCheck,
    trials: dict[str, ModuleTrial],
    results: dict[str, CheckResult],
    context: GradingContext,
    stopped: str,
) -> CheckOutcome:
    factor = check.cuda_tolerance_factor if context.device.startswith("cuda") else 1.0
    rtol, atol = check.rtol * factor, check.atol * factor
    details: dict[str, JSONValue] = {"max_points": check.points, "rtol": rtol, "atol": atol}
    findings = _Findings()
    for trial_index in range(check.trials):
        check_id = f"{check.name}#{trial_index}"
        result = results.get(check_id)
        returned = _module_value(result, stopped)
        if isinstance(returned, Failure):
            return _no_points(check.name, check.points, details, returned.message, returned.status)
        output, gradients, count = returned
        trial = trials[check_id]
        findings.parameter_count = count
        # The runner's report is text from the sandbox: only arguments the forward really took.
        findings.mutated = findings.mutated or tuple(mutated_arguments(result, trial.entry["args"]))
        if not findings.forward:
            findings.forward = compare_parts(
                trial.output, output, rtol, atol, "the forward output", check.outputs
            )
        if check.backward and not findings.gradients and not findings.gradients_skipped:
            if trial.gradients and not gradients:
                findings.gradients_skipped = True  # the runner could not apply the loss to this output
            else:
                findings.gradients = _compare_gradients(trial.gradients, gradients, rtol, atol)
    reference_count = trials[f"{check.name}#0"].parameter_count
    return _scored(check, details, findings, reference_count)


def _module_value(
    result: CheckResult | None, stopped: str
) -> tuple[Tree, dict[str, FloatArray], int] | Failure:
    """The runner's `{"output", "gradients", "parameters"}` record, or why there is none."""
    if result is not None and result.status == "error" and result.message.startswith(MISMATCH_PREFIX):
        return Failure(f"{result.message.removeprefix(MISMATCH_PREFIX).rstrip('.')}.", "error")
    returned = _returned_value(result, stopped, "result")
    if isinstance(returned, Failure):
        return returned
    unreadable = Failure("its result could not be read (not the runner's record of a module).", "invalid")
    if not isinstance(returned, dict) or set(returned) != {"output", "gradients", "parameters"}:
        return unreadable
    gradients, count = returned["gradients"], returned["parameters"]
    if not isinstance(gradients, dict) or not all(isinstance(g, np.ndarray) for g in gradients.values()):
        return unreadable
    if not isinstance(count, np.ndarray) or count.size != 1 or not np.isfinite(count).all():
        return unreadable
    arrays = {key: g for key, g in gradients.items() if isinstance(g, np.ndarray)}
    return returned["output"], arrays, int(count.reshape(()))


def _compare_gradients(
    want: dict[str, FloatArray], got: dict[str, FloatArray], rtol: float, atol: float
) -> list[PartMismatch]:
    mismatches = []
    for name, gradient in want.items():
        given = got.get(name)
        if given is None:
            mismatches.append(PartMismatch(name, "is missing"))
        else:
            mismatches += compare_parts(gradient, given, rtol, atol, name)
    return mismatches


def _scored(
    check: ModuleCheck, details: dict[str, JSONValue], findings: _Findings, reference_count: int
) -> CheckOutcome:
    forward_share = check.points / 2 if check.backward else check.points
    points = 0.0 if findings.forward else forward_share
    sentences = [_forward_sentence(findings.forward)]
    if check.backward:
        gradients_right = not findings.gradients and not findings.gradients_skipped
        points += check.points - forward_share if gradients_right else 0.0
        sentences.append(_gradients_sentence(findings))
    points = round(points, 6)
    text = "; ".join(sentences) + "."
    if findings.parameter_count is not None and findings.parameter_count != reference_count:
        text += f" {check.name} has {findings.parameter_count} parameters, the reference {reference_count}."
    if findings.mutated:
        text += f" Its forward changed its argument {', '.join(findings.mutated)} in place."
    details.update(
        points=points,
        status="correct" if points == check.points else "values",
        forward=[_mismatch_details(m) for m in findings.forward],
        gradients=[_mismatch_details(m) for m in findings.gradients],
        parameters=findings.parameter_count,
        reference_parameters=reference_count,
        mutated=list(findings.mutated),
    )
    line = f"{check.name}: {points:g}/{check.points:g} - {text}"
    return CheckOutcome(check.name, points, check.points, line, details)


def _mismatch_details(mismatch: PartMismatch) -> dict[str, JSONValue]:
    return {"part": mismatch.part, "reason": mismatch.reason, "max_abs_error": mismatch.error}


def _forward_sentence(mismatches: list[PartMismatch]) -> str:
    if not mismatches:
        return "the forward output is right"
    if len(mismatches) == 1 and mismatches[0].part == "the forward output":
        return f"the forward output {mismatches[0].reason}"
    return "in the forward output, " + ", ".join(f"{m.part} {m.reason}" for m in mismatches)


def _gradients_sentence(findings: _Findings) -> str:
    if findings.gradients_skipped:
        return "the gradients were not compared (the forward output does not have the reference's parts)"
    wrong = findings.gradients
    if not wrong:
        return "the parameter gradients are right"
    return "; ".join(f"the gradient of {m.part} {m.reason}" for m in wrong)
