"""Stage 1 of notebook grading, run INSIDE the sandbox (standalone: graders is not mounted there).

It runs the notebook's code cells in one namespace (no Jupyter kernel: a kernel costs ~0.7 s and a
second process per run, see docs/performance.md), reporting progress as JSON lines on the control
socket. Then, for each check, the grading process sends a fresh result pipe over that socket; the
runner calls the checked name on the inputs the grader generated outside, in a forked child that
writes ONE record to that pipe. Every message's format is in `_wire.py`, and how each kind of
check calls the notebook's code in `_calls.py`; the grader ships both into the run's input
directory (WIRE_FILE, CALLS_FILE), because this script can import nothing of `graders`.

Everything here is trusted code, but it shares its process with student code, so nothing it
writes is trusted outside: the grader parses lines and records as data, keeps every time limit
itself, and compares outside.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

CONTROL: socket.socket | None = None
# graders/notebook/_wire.py and _calls.py, loaded from the input directory once the go signal came.
WIRE: ModuleType | None = None
CALLS: ModuleType | None = None
# The names the grader gives _wire.py and _calls.py among the run's input files (_plan.py).
WIRE_FILE = "wire.py"
CALLS_FILE = "calls.py"
# How long after a check's time limit its child is killed (the grading process stops waiting for
# the check at the limit itself; this only frees the CPU for the next check).
KILL_GRACE_SECONDS = 0.2
# How often the runner looks whether a check's child has exited.
CHILD_POLL_SECONDS = 0.005


def load_input_module(input_dir: Path, file_name: str, module_name: str) -> ModuleType:
    """One of the grader's Python files shipped among the run's input files, as a module."""
    spec = importlib.util.spec_from_file_location(module_name, input_dir / file_name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_wire(input_dir: Path) -> ModuleType:
    return load_input_module(input_dir, WIRE_FILE, "autograde_wire")


def load_calls(input_dir: Path, wire: ModuleType) -> ModuleType:
    """The calls of each kind of check, bound to the wire format (its limits bound their results)."""
    calls = load_input_module(input_dir, CALLS_FILE, "autograde_calls")
    vars(calls)["WIRE"] = wire
    return calls


def emit(event: dict[str, Any]) -> None:
    """One progress line on the control socket."""
    assert CONTROL is not None
    assert WIRE is not None
    CONTROL.sendall(WIRE.encode_line(event))


def write_result(fd: int, outcome: Any) -> None:
    """A check's one record: what it returned (a `_calls.Result`), or the error it raised instead."""
    assert WIRE is not None
    assert CALLS is not None
    if isinstance(outcome, BaseException):
        record = WIRE.Record("error", error=CALLS.short_error(outcome))
    else:
        record = WIRE.Record("ok", payload=outcome.payload, layout=outcome.layout, mutated=outcome.mutated)
    WIRE.write_record(fd, record)


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


def run_cells(notebook_path: Path, namespace: dict[str, Any]) -> None:
    assert CALLS is not None
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
            emit({"event": "cell", "index": index, "status": "error", "error": CALLS.short_error(error)})
            return
        emit({"event": "cell", "index": index, "status": "ok", "seconds": time.monotonic() - started})


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
    assert CALLS is not None
    pid = os.fork()
    if pid == 0:  # the child
        try:
            write_result(fd, CALLS.call_check(check, namespace, inputs, device, seed))
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
    assert CALLS is not None
    outcome: Any
    try:
        outcome = CALLS.call_check(check, namespace, inputs, device, seed)
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
    global CONTROL, WIRE, CALLS
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
    CALLS = load_calls(arguments.input, WIRE)
    # The grading process starts the cells' clock when it reads this line.
    emit({"event": "ready", "seconds": ready, "waited": waited})
    plan = json.loads((arguments.input / "plan.json").read_text())
    for name in plan["data_files"]:
        Path(name).write_bytes((arguments.input / name).read_bytes())
    CALLS.seed_everything(plan["seed"])
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
