"""Stage 1 of notebook grading, run INSIDE the sandbox (standalone: graders is not mounted there).

It runs the notebook's code cells in one namespace (no Jupyter kernel: a kernel costs ~0.7 s and a
second process per run, see docs/performance.md), reporting progress as JSON lines on the control
socket. Then, for each check, the grading process sends a fresh result pipe over that socket; the
runner calls the checked name on the inputs the grader generated outside, in a forked child that
writes ONE record to that pipe. Every message's format is in `_wire.py`, which the grader ships
into the run's input directory as WIRE_FILE, because this script can import nothing of `graders`.

Everything here is trusted code, but it shares its process with student code, so nothing it
writes is trusted outside: the grader parses lines and records as data, keeps every time limit
itself, and compares outside.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import random
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

CONTROL: socket.socket | None = None
# graders/notebook/_wire.py, loaded from the input directory once the go signal came.
WIRE: ModuleType | None = None
# The name the grader gives _wire.py among the run's input files (graders/notebook/_plan.py).
WIRE_FILE = "wire.py"
# How long after a check's time limit its child is killed (the grading process stops waiting for
# the check at the limit itself; this only frees the CPU for the next check).
KILL_GRACE_SECONDS = 0.2
# How often the runner looks whether a check's child has exited.
CHILD_POLL_SECONDS = 0.005
# Of an exception's message, what the feedback needs (the grading process cuts it again anyway).
MAX_ERROR_CHARS = 500
# np.random.seed takes 32-bit seeds only.
NUMPY_SEED_RANGE = 2**32


def load_wire(input_dir: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("autograde_wire", input_dir / WIRE_FILE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def emit(event: dict[str, Any]) -> None:
    """One progress line on the control socket."""
    assert CONTROL is not None
    assert WIRE is not None
    CONTROL.sendall(WIRE.encode_line(event))


def write_result(fd: int, outcome: Result | BaseException) -> None:
    """A check's one record: what it returned (see `Result`), or the error it raised instead."""
    assert WIRE is not None
    if isinstance(outcome, BaseException):
        record = WIRE.Record("error", error=short_error(outcome))
    else:
        record = WIRE.Record("ok", payload=outcome.payload, layout=outcome.layout, mutated=outcome.mutated)
    WIRE.write_record(fd, record)


def short_error(error: BaseException) -> str:
    """The exception and the student's own frame it came from, without the runner's frames."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.startswith("<")]
    where = f" (in {frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {str(error)[:MAX_ERROR_CHARS]}{where}"


def cell_source(raw: object) -> str:
    source = "".join(raw) if isinstance(raw, list) else str(raw)
    if source.lstrip().startswith("%%"):
        return ""  # a cell magic (%%time, %%capture ...): there is no IPython to run it
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            # Line magics and shell escapes need IPython; they do nothing here.
            line = line[: len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % NUMPY_SEED_RANGE)
    torch.manual_seed(seed)


def run_cells(notebook_path: Path, namespace: dict[str, Any]) -> None:
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    cells = [cell for cell in notebook.get("cells", []) if cell.get("cell_type") == "code"]
    emit({"event": "cells", "count": len(cells)})
    for index, cell in enumerate(cells, start=1):
        emit({"event": "cell_started", "index": index})
        started = time.monotonic()
        try:
            code = compile(cell_source(cell.get("source", "")), f"<cell {index}>", "exec")
            exec(code, namespace)  # noqa: S102  (student code, inside the sandbox: that is its job)
        except BaseException as error:
            emit({"event": "cell", "index": index, "status": "error", "error": short_error(error)})
            return
        emit({"event": "cell", "index": index, "status": "ok", "seconds": time.monotonic() - started})


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


def load_inputs(path: Path) -> dict[str, Any]:
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def run_check_forked(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int, fd: int
) -> None:
    """One call in a forked child writing to the check's own pipe: a hang or a crash costs this
    check only. The grading process reads the pipe and keeps the time limit; the child is killed
    here just after it, so it stops using the CPU."""
    pid = os.fork()
    if pid == 0:  # the child
        try:
            write_result(fd, call_check(check, namespace, inputs, device, seed))
        except BaseException as error:
            with contextlib.suppress(BaseException):
                write_result(fd, error)
        os._exit(0)
    os.close(fd)  # the child holds the only write end now
    deadline = time.monotonic() + check["seconds"] + KILL_GRACE_SECONDS
    while time.monotonic() < deadline and os.waitpid(pid, os.WNOHANG) == (0, 0):
        time.sleep(CHILD_POLL_SECONDS)
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def run_check_in_process(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int, fd: int
) -> None:
    """On CUDA a forked child cannot use the GPU its parent initialised: call in-process with an
    alarm (a courtesy only: the grading process keeps the limit, whatever student code does)."""

    def expire(_signal: int, _frame: object) -> None:
        raise TimeoutError(f"did not return within {check['seconds']:g} s")

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(check["seconds"]))
    outcome: Result | BaseException
    try:
        outcome = call_check(check, namespace, inputs, device, seed)
    except BaseException as error:
        outcome = error
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        write_result(fd, outcome)
    finally:
        os.close(fd)


def next_check(plan: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """The check the grading process asks for next, with its result pipe; None when it asks no more."""
    assert CONTROL is not None
    assert WIRE is not None
    message, fds, _flags, _address = socket.recv_fds(CONTROL, WIRE.MAX_REQUEST_BYTES, 1)
    if not fds:
        return None
    try:
        return plan["checks"][WIRE.read_check_request(message)], fds[0]
    except (ValueError, KeyError, IndexError, TypeError):
        os.close(fds[0])
        return None


def main() -> None:
    global CONTROL, WIRE
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    arguments = parser.parse_args()
    CONTROL = socket.socket(fileno=arguments.control_fd)
    started = time.monotonic()
    # Everything a run needs before student code, done while the sandbox waits as a spare.
    import numpy  # noqa: F401
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    ready = time.monotonic() - started
    # The go signal: the input files are in place once a line arrives on stdin.
    sys.stdin.buffer.readline()
    waited = time.monotonic() - started - ready
    WIRE = load_wire(arguments.input)
    # The grading process starts the cells' clock when it reads this line.
    emit({"event": "ready", "seconds": ready, "waited": waited})
    plan = json.loads((arguments.input / "plan.json").read_text())
    for name in plan["data_files"]:
        Path(name).write_bytes((arguments.input / name).read_bytes())
    seed_everything(plan["seed"])
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    run_cells(arguments.input / "notebook.ipynb", namespace)
    emit({"event": "cells_done"})
    device = plan["device"]
    runner = run_check_in_process if device.startswith("cuda") else run_check_forked
    for _ in plan["checks"]:  # the grading process asks for each check once, in order
        request = next_check(plan)
        if request is None:
            break
        check, fd = request
        inputs = load_inputs(arguments.input / check["inputs"])
        runner(check, namespace, inputs, device, plan["seed"], fd)
    sys.stdout.flush()
    os._exit(0)  # no atexit handlers or finalisers of student objects


if __name__ == "__main__":
    main()
