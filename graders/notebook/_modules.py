"""Module checks outside the sandbox: the reference module's trial (stage 0) and its outcome (stage 2).

A trial builds the reference class with the check's `init` from a seed, draws the forward's
arguments and, with `backward`, the weights of the fixed loss `sum_i (output_i * weights_i).sum()`
over the output's parts. The arguments, the reference's parameters and the loss weights enter the
sandbox (they are not secret: the parameters come from a seed, not from training); the expected
output and gradients never do. The runner (`_calls.call_module`) copies the parameters into the
notebook's module, runs the forward and the same loss, and returns
`{"output": ..., "gradients": {reference parameter name: gradient}, "parameters": count}`.

The forward output earns the check's points, or half of them with `backward = true` (the
parameter gradients, all right, the other half); a part must be right in every trial. Both are
compared part by part (`_parts.py`), the gradients by the reference's parameter names. A forward
that changes an argument in place earns nothing unless `allow_mutation` (`_mutation.py`).
"""

from __future__ import annotations

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
    as_tree,
    no_points,
    returned_value,
    tree_size,
)
from graders.notebook._mutation import forfeits, mutated_arguments, mutation_phrase
from graders.notebook._parts import MAX_NAMED_PARTS, PartResult, PartsComparison, compare_parts, merge_trials
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


# --- Stage 2: the outcome of a module check.

# Where the forward output is one tensor, feedback names it so ("the forward output is wrong (...)").
FORWARD_OUTPUT = "the forward output"


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

    def tolerance_for(_part: str) -> tuple[float, float]:
        return rtol, atol

    forward: list[PartsComparison] = []
    gradients: list[PartsComparison] = []
    gradients_skipped = False
    parameter_count: int | None = None
    mutated: list[str] = []
    for trial_index in range(check.trials):
        check_id = f"{check.name}#{trial_index}"
        result = results.get(check_id)
        returned = _module_value(result, stopped)
        if isinstance(returned, Failure):
            return no_points(check.name, check.points, details, returned.message, returned.status)
        output, given_gradients, parameter_count = returned
        trial = trials[check_id]
        mutated += [name for name in mutated_arguments(result, trial.entry["args"]) if name not in mutated]
        compared = compare_parts(output, trial.output, check.outputs, tolerance_for, whole=FORWARD_OUTPUT)
        forward.append(compared)
        if not check.backward:
            continue
        if trial.gradients and not given_gradients:
            gradients_skipped = True  # the runner could not apply the loss to this output
        else:
            want: Tree = dict(trial.gradients)
            gradients.append(compare_parts(dict(given_gradients), want, None, tolerance_for))
    findings = _Findings(
        merge_trials(forward),
        merge_trials(gradients) if gradients and not gradients_skipped else None,
        parameter_count,
        mutated,
    )
    reference_count = trials[f"{check.name}#0"].parameter_count
    return _scored(check, details, findings, reference_count)


@dataclass(frozen=True, slots=True)
class _Findings:
    """What the trials showed: each aspect merged over them (a part is right only if right in all)."""

    forward: PartsComparison
    # None: not compared (no `backward`, or the output lacks the parts the loss is taken over).
    gradients: PartsComparison | None
    parameter_count: int | None
    mutated: list[str]


def _module_value(
    result: CheckResult | None, stopped: str
) -> tuple[Tree, dict[str, FloatArray], int] | Failure:
    """The runner's `{"output", "gradients", "parameters"}` record, or why there is none."""
    if result is not None and result.status == "error" and result.message.startswith(MISMATCH_PREFIX):
        return Failure(f"{result.message.removeprefix(MISMATCH_PREFIX).rstrip('.')}.", "error")
    returned = returned_value(result, stopped, "result")
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


def _scored(
    check: ModuleCheck, details: dict[str, JSONValue], findings: _Findings, reference_count: int
) -> CheckOutcome:
    forward_share = check.points / 2 if check.backward else check.points
    points = forward_share if findings.forward.all_right else 0.0
    sentences = [_forward_sentence(findings.forward)]
    wrong_gradients = findings.gradients.wrong_parts if findings.gradients is not None else []
    if check.backward:
        if findings.gradients is not None and findings.gradients.all_right:
            points += check.points - forward_share
        sentences.append(_gradients_sentence(findings.gradients))
    text = "; ".join(sentences) + "."
    if findings.parameter_count is not None and findings.parameter_count != reference_count:
        text += f" {check.name} has {findings.parameter_count} parameters, the reference {reference_count}."
    status = "correct" if points == check.points else "values"
    if findings.mutated:
        text = f"{mutation_phrase(f'{check.name}.forward', findings.mutated)} {text[0].upper()}{text[1:]}"
    if forfeits(findings.mutated, check.allow_mutation):
        points, status = 0.0, "mutated"
    points = round(points, 6)
    details.update(
        points=points,
        status=status,
        forward=[_part_details(part) for part in findings.forward.wrong_parts],
        gradients=[_part_details(part) for part in wrong_gradients],
        parameters=findings.parameter_count,
        reference_parameters=reference_count,
        mutated=list(findings.mutated),
    )
    line = f"{check.name}: {points:g}/{check.points:g} - {text}"
    return CheckOutcome(check.name, points, check.points, line, details)


def _part_details(part: PartResult) -> dict[str, JSONValue]:
    return {"part": part.name, "reason": part.reason, "max_abs_error": part.max_abs_error}


def _forward_sentence(comparison: PartsComparison) -> str:
    if comparison.all_right:
        return f"{FORWARD_OUTPUT} is right"
    what = comparison.phrase().rstrip(".")
    if comparison.structure:
        return f"the forward {what}"  # "the forward returned a tensor of shape (2, 4) where ..."
    if comparison.groups == ("",):
        return what  # one tensor, named FORWARD_OUTPUT by compare_parts
    return f"in {FORWARD_OUTPUT}, {what}"


def _gradients_sentence(comparison: PartsComparison | None) -> str:
    if comparison is None:
        return "the gradients were not compared (the forward output does not have the reference's parts)"
    if comparison.structure:
        return f"the parameter gradients could not be compared: {comparison.structure.rstrip('.')}"
    wrong = comparison.wrong_parts
    if not wrong:
        return "the parameter gradients are right"
    named = [f"the gradient of {part.name} {part.reason}" for part in wrong[:MAX_NAMED_PARTS]]
    if len(wrong) > MAX_NAMED_PARTS:
        named.append(f"{len(wrong) - MAX_NAMED_PARTS} more gradients are wrong")
    return "; ".join(named)
