"""Stage 1's calls, run INSIDE the sandbox beside `_runner.py` (standalone: graders is not mounted
there): how each kind of check calls the notebook's code, and its value turned into a record's
`Result`. The grader ships this file into the run's input directory as CALLS_FILE (`_plan.py`)
and the runner loads it with the wire format (`_runner.load_calls`), which it sets as `WIRE`.

`CALLS` maps a plan entry's `kind` to its call `(check, namespace, inputs, device, seed) -> Result`;
a new kind of check adds a function and a line there. Everything here shares its process with
student code, so nothing it returns is trusted outside: the grader parses records as data and
compares outside.
"""

from __future__ import annotations

import contextlib
import io
import random
import traceback
from types import ModuleType
from typing import Any

# graders/notebook/_wire.py as the runner loaded it (its limits bound a structured result).
WIRE: ModuleType | None = None
# Of an exception's message, what the feedback needs (the grading process cuts it again anyway).
MAX_ERROR_CHARS = 500
# np.random.seed takes 32-bit seeds only.
NUMPY_SEED_RANGE = 2**32


def short_error(error: BaseException) -> str:
    """The exception and the student's own frame it came from, without the runner's frames."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.startswith("<")]
    where = f" (in {frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {str(error)[:MAX_ERROR_CHARS]}{where}"


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % NUMPY_SEED_RANGE)
    torch.manual_seed(seed)


class Result:
    """What a check's call returned, ready for its record: one .npy array (layout None) or an
    .npz of a structure's leaves with its layout (see `_wire.py`)."""

    def __init__(self, payload: bytes, layout: Any = None, mutated: tuple[str, ...] = ()) -> None:
        self.payload, self.layout, self.mutated = payload, layout, mutated


def as_array(value: Any, max_elements: int) -> Any:
    """The value a check returned as a plain numeric numpy array, or a TypeError saying why not."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        array = value.detach().to("cpu").numpy()
    elif isinstance(value, np.ndarray | int | float | np.number) and not isinstance(value, bool):
        array = np.asarray(value)
    else:
        raise TypeError(f"returned a {type(value).__name__}, not a tensor")
    if array.dtype.kind not in "fiu":
        raise TypeError(f"returned a tensor of dtype {array.dtype}, not a number type")
    if array.size > max_elements:
        raise TypeError(f"returned {array.size} values, more than the {max_elements} expected")
    return np.array(array, dtype=np.float64, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)


def npy_result(array: Any, mutated: tuple[str, ...] = ()) -> Result:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return Result(buffer.getvalue(), None, mutated)


def structured_result(value: Any, max_elements: int, mutated: tuple[str, ...] = ()) -> Result:
    """A value that may be a tensor, or a tuple, list or dict (string keys) of them, nested: one
    tensor as .npy, anything else as an .npz of its leaves with the layout (`_wire.py`); with the
    names of the arguments the call changed in place."""
    import numpy as np

    if not isinstance(value, tuple | list | dict):
        return npy_result(as_array(value, max_elements), mutated)
    assert WIRE is not None
    leaves: dict[str, Any] = {}
    budget = [max_elements]

    def walk(node: Any, depth: int) -> Any:
        if depth > WIRE.MAX_LAYOUT_DEPTH:
            raise TypeError(f"returned a value nested more than {WIRE.MAX_LAYOUT_DEPTH} levels")
        if isinstance(node, tuple | list):
            kind = "list" if isinstance(node, list) else "tuple"  # a namedtuple is a tuple
            return {kind: [walk(child, depth + 1) for child in node]}
        if isinstance(node, dict):
            pairs = []
            for key, child in node.items():
                if not isinstance(key, str) or not 0 < len(key) <= WIRE.MAX_NAME_CHARS:
                    raise TypeError("returned a dict whose keys are not short strings")
                pairs.append([key, walk(child, depth + 1)])
            return {"dict": pairs}
        if len(leaves) >= WIRE.MAX_LAYOUT_PARTS:
            raise TypeError(f"returned more than {WIRE.MAX_LAYOUT_PARTS} tensors")
        array = as_array(node, budget[0])
        budget[0] -= array.size
        name = f"p{len(leaves)}"
        leaves[name] = array
        return name

    layout = walk(value, 0)
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **leaves)  # uncompressed: the grader refuses compressed members
    return Result(buffer.getvalue(), layout, mutated)


def seeded_target(check: dict[str, Any], namespace: dict[str, Any], seed: int) -> Any:
    """The checked name after seeding every generator, so each check starts from the same state."""
    seed_everything(seed)
    target = namespace.get(check["name"])
    if target is None:
        raise NameError(f"the notebook defines no {check['name']!r}")
    return target


def model_outputs(target: Any, features: Any, check: dict[str, Any], device: str, dtype: Any) -> Any:
    """A trained module's outputs on features, in batches of `batch`, in eval mode without grad,
    concatenated along the first axis (the float64 array of at most `max_elements` values). The
    module goes to the worker's device with its batches: a notebook that trained on the CPU (or
    on another device) is checked where its inputs are."""
    import numpy as np
    import torch

    if not isinstance(target, torch.nn.Module):
        raise TypeError(f"{check['name']} is a {type(target).__name__}, not a torch.nn.Module")
    target.to(device)
    target.eval()
    outputs = []
    budget = check["max_elements"]
    with torch.no_grad():
        for start in range(0, len(features), check["batch"]):
            batch = torch.as_tensor(features[start : start + check["batch"]], dtype=dtype)
            output = as_array(target(batch.to(device)), budget)
            budget -= output.size
            outputs.append(output)
    return np.concatenate(outputs) if outputs else np.zeros((0, 2))


def call_trained_model(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int
) -> Result:
    """A trained classifier's, regression or sequence model's outputs on the check's features, as
    one array. A sequence model's tokens go in as int64 (what an embedding layer takes), other
    features as float32."""
    import torch

    dtype = torch.int64 if check["kind"] == "sequence" else torch.float32
    target = seeded_target(check, namespace, seed)
    return npy_result(model_outputs(target, inputs["X"], check, device, dtype))


def call_function(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int
) -> Result:
    import torch

    target = seeded_target(check, namespace, seed)
    if not callable(target):
        raise TypeError(f"{check['name']} is a {type(target).__name__}, not a function")
    arguments = {name: torch.as_tensor(inputs[name]).to(device) for name in check["args"]}
    value, mutated = call_with_mutation_guard(target, arguments)
    return structured_result(value, check["max_elements"], mutated)


def call_with_mutation_guard(
    fn: Any, arguments_by_name: dict[str, Any], *, by_keyword: bool = False
) -> tuple[Any, tuple[str, ...]]:
    """Call `fn` with the arguments (in order, or by keyword) and name the tensor arguments whose
    values, shape or dtype the call changed in place (`x += 1`, `x[0] = 0`, `x.add_(1)`), for
    the record's `mutated`. Each check loads its inputs afresh, so a change costs no other check."""
    import torch

    before = {
        name: value.detach().clone()
        for name, value in arguments_by_name.items()
        if isinstance(value, torch.Tensor)
    }
    value = fn(**arguments_by_name) if by_keyword else fn(*arguments_by_name.values())
    mutated = tuple(name for name, copy in before.items() if changed_in_place(copy, arguments_by_name[name]))
    return value, mutated


def changed_in_place(before: Any, after: Any) -> bool:
    """Whether a tensor differs from its copy taken before the call (NaN equals NaN here)."""
    import torch

    after = after.detach()
    if after.shape != before.shape or after.dtype != before.dtype:
        return True
    same = torch.eq(before, after)
    if before.is_floating_point() or before.is_complex():
        same |= torch.isnan(before) & torch.isnan(after)
    return not bool(same.all())


class ModuleMismatch(Exception):
    """The notebook's module cannot be checked: not a Module class, a constructor that raised, or
    parameters that do not fit the reference's. The grader shows the message as it stands."""


# Of a module's parameters, how many are listed in a message saying they do not fit.
MAX_LISTED_PARAMETERS = 12


def call_module(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int
) -> Result:
    """Build the notebook's module with `init`, give it the reference's parameters, run the
    forward on the check's arguments and (with `backward`) the fixed loss's backward pass:
    `{"output": ..., "gradients": {reference parameter name: gradient}, "parameters": count}`."""
    import torch

    name = check["name"]
    target = seeded_target(check, namespace, seed)
    if not isinstance(target, type):
        raise ModuleMismatch(f"{name} is a {type(target).__name__}, not a torch.nn.Module subclass")
    if not issubclass(target, torch.nn.Module):
        raise ModuleMismatch(f"{name} is a class, but not a subclass of torch.nn.Module")
    arguments_text = ", ".join(f"{key}={value!r}" for key, value in check["init"].items())
    try:
        built = target(**check["init"])
    except Exception as error:
        raise ModuleMismatch(f"{name}({arguments_text}) raised {short_error(error)}") from None
    # On the worker's device, as its arguments are (and a trained model's batches, `model_outputs`).
    module = built.to(device)
    reference = [(key, inputs[f"p{index}"]) for index, key in enumerate(check["parameters"])]
    pairs = matched_parameters(name, module, reference)
    with torch.no_grad():
        for (_, array), parameter in zip(reference, pairs.values(), strict=True):
            parameter.copy_(torch.as_tensor(array))
    module.eval()
    arguments = {
        key: torch.as_tensor(inputs[f"a{index}"]).to(device) for index, key in enumerate(check["args"])
    }
    output, mutated = call_with_mutation_guard(module, arguments, by_keyword=True)
    gradients: dict[str, Any] = {}
    if check["backward"]:
        gradients = loss_gradients(output, pairs, inputs, check["loss_parts"])
    count = sum(parameter.numel() for parameter in module.parameters())
    value = {"output": output, "gradients": gradients, "parameters": count}
    return structured_result(value, check["max_elements"], mutated)


def matched_parameters(name: str, module: Any, reference: list[tuple[str, Any]]) -> dict[str, Any]:
    """The module's parameter taking each reference parameter, by reference name: by name when every
    reference name is the module's with the same shape, else by shape in declaration order (the
    first unused one of that shape) when both have as many; else ModuleMismatch listing both."""
    own = list(module.named_parameters())
    by_name = dict(own)
    if all(key in by_name and tuple(by_name[key].shape) == array.shape for key, array in reference):
        return {key: by_name[key] for key, _ in reference}
    unused = [parameter for _, parameter in own]
    pairs: dict[str, Any] = {}
    for key, array in reference:
        same_shape = (p for p in unused if tuple(p.shape) == array.shape)
        match = next(same_shape, None) if len(own) == len(reference) else None
        if match is None:
            count = sum(parameter.numel() for _, parameter in own)
            reference_count = sum(array.size for _, array in reference)
            raise ModuleMismatch(
                f"{name}'s parameters do not fit the reference's, by name or by shape in declaration "
                f"order ({name} has {count} parameters, the reference {reference_count}): the reference "
                f"has {listed((k, a.shape) for k, a in reference)}; {name} has "
                f"{listed((k, tuple(p.shape)) for k, p in own)}"
            )
        unused = [parameter for parameter in unused if parameter is not match]  # (== compares values)
        pairs[key] = match
    return pairs


def listed(parameters: Any) -> str:
    """`W_xh (3, 4), b (4,)`: the first MAX_LISTED_PARAMETERS of (name, shape) pairs."""
    items = [f"{key} {tuple(shape)}" for key, shape in parameters]
    if not items:
        return "none"
    more = len(items) - MAX_LISTED_PARAMETERS
    return ", ".join(items[:MAX_LISTED_PARAMETERS]) + (f" and {more} more" if more > 0 else "")


def loss_gradients(output: Any, pairs: dict[str, Any], inputs: Any, loss_parts: list[Any]) -> dict[str, Any]:
    """The parameters' gradients of the check's fixed loss, sum_i (part_i * weights_i).sum(), by
    reference name; none when the output lacks a part of the reference's shape (the grader says so)."""
    import torch

    loss = None
    for index, path in enumerate(loss_parts):
        part = part_at(output, path)
        weights = inputs[f"w{index}"]
        if not isinstance(part, torch.Tensor) or tuple(part.shape) != weights.shape:
            return {}
        term = (part * torch.as_tensor(weights).to(part.device, part.dtype)).sum()
        loss = term if loss is None else loss + term
    # A parameter no gradient reaches (frozen, detached, unused) gets zeros: the grader names it.
    trainable = {key: p for key, p in pairs.items() if p.requires_grad}
    found: dict[str, Any] = {}
    if loss is not None and loss.requires_grad and trainable:
        grads = torch.autograd.grad(loss, list(trainable.values()), allow_unused=True)
        found = dict(zip(trainable, grads, strict=True))
    return {
        key: torch.zeros_like(parameter) if found.get(key) is None else found[key]
        for key, parameter in pairs.items()
    }


def part_at(output: Any, path: list[Any]) -> Any:
    """The part of a forward output at a path of positions and keys, or None if it has none there."""
    part = output
    for key in path:
        by_key = isinstance(part, dict) and isinstance(key, str) and key in part
        by_position = isinstance(part, tuple | list) and isinstance(key, int) and 0 <= key < len(part)
        if not (by_key or by_position):
            return None
        part = part[key]
    return part


def call_gradient(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int
) -> Result:
    """A hand-written backward called as `name(dy, *arguments)` on float64 tensors, returned as
    `{"backward": what it returned}`; with `notebook_forward`, also `"autograd"`: the gradients
    autograd gives through the notebook's own forward (left out if that fails: it is diagnostic)."""
    import torch

    target = seeded_target(check, namespace, seed)
    if not callable(target):
        raise TypeError(f"{check['name']} is a {type(target).__name__}, not a function")

    def fresh(names: list[str]) -> dict[str, Any]:
        # Copies: a call that changes its arguments in place changes no other call's.
        return {name: torch.tensor(inputs[name]).to(device) for name in names}

    # dy first, under the inputs file's name for it (the grader shows it as dy).
    backward, mutated = call_with_mutation_guard(target, fresh([check["upstream"], *check["args"]]))
    value = {"backward": backward}
    if check["notebook_forward"] is not None:
        with contextlib.suppress(Exception):
            upstream = fresh([check["upstream"]])[check["upstream"]]
            value["autograd"] = own_autograd(check, namespace, list(fresh(check["args"]).values()), upstream)
    return structured_result(value, check["max_elements"], mutated)


def own_autograd(
    check: dict[str, Any], namespace: dict[str, Any], arguments: list[Any], upstream: Any
) -> Any:
    """The gradients for the `wrt` arguments that autograd gives through the notebook's forward."""
    import torch

    forward = namespace.get(check["notebook_forward"])
    if not callable(forward):
        raise NameError(f"the notebook defines no function {check['notebook_forward']!r}")
    by_name = dict(zip(check["args"], arguments, strict=True))
    wrt = [by_name[name].requires_grad_(True) for name in check["wrt"]]
    with torch.enable_grad():
        output = forward(*arguments)
        found = torch.autograd.grad(output, wrt, upstream, allow_unused=True)
    return tuple(torch.zeros_like(w) if g is None else g for g, w in zip(found, wrt, strict=True))


# One call per check kind (the plan's `kind`): (check, namespace, inputs, device, seed) -> Result.
CALLS = {
    "function": call_function,
    "module": call_module,
    "gradient": call_gradient,
    "classifier": call_trained_model,
    "regression": call_trained_model,
    "sequence": call_trained_model,
}


def call_check(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int
) -> Result:
    """Run one check's call(s): what it returned, ready for its record."""
    return CALLS[check["kind"]](check, namespace, inputs, device, seed)
