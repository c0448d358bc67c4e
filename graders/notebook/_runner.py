"""Stage 1 of notebook grading, run INSIDE the sandbox (standalone: graders is not mounted there).

It runs the notebook's code cells in one namespace (no Jupyter kernel: a kernel costs ~0.7 s and a
second process per run, see docs/performance.md), then calls each checked name on the inputs the
grader generated outside, each call in a forked child with its own time limit, and streams its
findings to the result fd as records: a 4-byte big-endian header length, a JSON header, then
`payload_bytes` bytes of one `.npy` array (written with allow_pickle=False).

Everything here is trusted code, but it shares its process with student code, so nothing it
writes is trusted outside: the grader parses the records as data and compares them there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import select
import signal
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

RESULT_FD = -1
# The runner's own pid: a process that student code forked and that returns into runner code
# (a fork inside a cell or a check) must end there, not run the rest of the runner.


def emit(header: dict[str, Any], payload: bytes = b"") -> None:
    header = dict(header, payload_bytes=len(payload))
    encoded = json.dumps(header).encode()
    data = struct.pack(">I", len(encoded)) + encoded + payload
    view = memoryview(data)
    while view:
        written = os.write(RESULT_FD, view)
        view = view[written:]


def short_error(error: BaseException) -> str:
    """The exception and the student's own frame it came from, without the runner's frames."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.startswith("<")]
    where = f" (in {frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {str(error)[:500]}{where}"


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
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def start_watchdog(seconds: float) -> threading.Timer:
    """End the run when the cells overrun their time: a thread that student code cannot cancel
    (the functions it calls are bound here, before any student code runs). A cell that holds the
    GIL in C code is still stopped by the sandbox's own wall-clock limit."""
    exit_now, write, fd = os._exit, os.write, RESULT_FD
    header = json.dumps({"event": "cells_timeout", "seconds": seconds, "payload_bytes": 0}).encode()
    record = struct.pack(">I", len(header)) + header

    def expire() -> None:
        try:
            write(fd, record)
        finally:
            exit_now(0)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


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


def call_check(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int
) -> bytes:
    """Run one check's call(s) and return the .npy bytes of its output."""
    import numpy as np
    import torch

    seed_everything(seed)
    target = namespace.get(check["name"])
    if target is None:
        raise NameError(f"the notebook defines no {check['name']!r}")
    if check["kind"] == "classifier":
        if not isinstance(target, torch.nn.Module):
            raise TypeError(f"{check['name']} is a {type(target).__name__}, not a torch.nn.Module")
        inputs_array = inputs["X"]
        target.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, len(inputs_array), check["batch"]):
                batch = torch.as_tensor(inputs_array[start : start + check["batch"]], dtype=torch.float32)
                outputs.append(as_array(target(batch.to(device)), check["max_elements"]))
        result = np.concatenate(outputs) if outputs else np.zeros((0, 2))
    else:
        if not callable(target):
            raise TypeError(f"{check['name']} is a {type(target).__name__}, not a function")
        arguments = [torch.as_tensor(inputs[name]).to(device) for name in check["args"]]
        result = as_array(target(*arguments), check["max_elements"])
    buffer = io.BytesIO()
    np.save(buffer, result, allow_pickle=False)
    return buffer.getvalue()


def load_inputs(path: Path) -> dict[str, Any]:
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def run_check_forked(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int
) -> None:
    """One call in a forked child: a hang or a crash costs this check only."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            payload = call_check(check, namespace, inputs, device, seed)
            header = json.dumps({"status": "ok"}).encode()
        except BaseException as error:
            payload = b""
            header = json.dumps({"status": "error", "error": short_error(error)}).encode()
        data = struct.pack(">I", len(header)) + header + payload
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + check["seconds"]
    received = bytearray()
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_end], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_end, 1 << 20)
        if not chunk:
            break
        received += chunk
        if len(received) > check["max_bytes"]:
            break
    os.close(read_end)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    base = {"event": "check", "name": check["id"]}
    if timed_out:
        emit(base | {"status": "timeout", "error": f"did not return within {check['seconds']:g} s"})
        return
    if len(received) < 4:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
        emit(base | {"status": "error", "error": f"the call ended the process ({how}) without a result"})
        return
    (length,) = struct.unpack(">I", received[:4])
    header = json.loads(received[4 : 4 + length])
    emit(base | header, bytes(received[4 + length :]))


def run_check_in_process(
    check: dict[str, Any], namespace: dict[str, Any], inputs: Any, device: str, seed: int
) -> None:
    """On CUDA a forked child cannot use the GPU its parent initialised: call in-process with an alarm."""

    def expire(_signal: int, _frame: object) -> None:
        raise TimeoutError(f"did not return within {check['seconds']:g} s")

    base = {"event": "check", "name": check["id"]}
    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(check["seconds"]))
    try:
        payload = call_check(check, namespace, inputs, device, seed)
    except TimeoutError as error:
        emit(base | {"status": "timeout", "error": str(error)})
        return
    except BaseException as error:
        emit(base | {"status": "error", "error": short_error(error)})
        return
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    emit(base | {"status": "ok"}, payload)


def main() -> None:
    global RESULT_FD
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    arguments = parser.parse_args()
    RESULT_FD = arguments.result_fd
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
    emit({"event": "ready", "seconds": ready, "waited": waited})
    plan = json.loads((arguments.input / "plan.json").read_text())
    for name in plan["data_files"]:
        Path(name).write_bytes((arguments.input / name).read_bytes())
    seed_everything(plan["seed"])
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    watchdog = start_watchdog(plan["notebook_seconds"])
    run_cells(arguments.input / "notebook.ipynb", namespace)
    watchdog.cancel()
    device = plan["device"]
    runner = run_check_in_process if device.startswith("cuda") else run_check_forked
    for check in plan["checks"]:
        inputs = load_inputs(arguments.input / check["inputs"])
        runner(check, namespace, inputs, device, plan["seed"])
    emit({"event": "done"})
    sys.stdout.flush()
    os._exit(0)  # no atexit handlers or finalisers of student objects


if __name__ == "__main__":
    main()
