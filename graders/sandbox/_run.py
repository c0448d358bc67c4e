"""Start sandboxed runs, feed them files, talk to them over a control socket, and leave nothing running.

A fresh sandbox per run (bwrap, the interpreter, `import torch`: ~2 s of CPU) is the fallback;
with a fork server (graders/sandbox/_zygote.py) the start-up is paid once per grading process.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from graders.sandbox._bwrap import (
    ENTRY_SCRIPT,
    SANDBOX_ENTRY,
    SANDBOX_INPUT,
    SANDBOX_SCRIPT,
    SANDBOX_SITE_PACKAGES,
    bwrap_command,
    outer_environment,
)
from graders.sandbox._cgroup import RunGroups, create_run_groups
from graders.sandbox._channel import SandboxChannel
from graders.sandbox._limits import SandboxLimits, SandboxMode

if TYPE_CHECKING:
    from graders.sandbox._zygote import Zygotes

logger = logging.getLogger(__name__)

# Non-root uids for runs: one drawn per run from a range no real account uses.
RUN_UID_LOW, RUN_UID_HIGH = 200_000, 260_000
CONTROL_FD_ARGUMENT = "--control-fd"
# The longest line a run may send on its control socket; longer ones are dropped.
MAX_CONTROL_LINE_BYTES = 64 * 1024
# After the conversation ended, how long a run that was not stopped may take to exit by itself.
EXIT_GRACE_SECONDS = 1.0
# The script reads one line from stdin before it looks at its input: the go signal.
GO = b"go\n"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing and unsafe-dev mode was not chosen."""


class ZygoteFailed(RuntimeError):
    """A fork server could not start or did not answer, before the run's script started."""


@dataclass(frozen=True, slots=True)
class SandboxRun:
    exit_code: int | None
    # Which limit ended the run, if one did: "wall time", "memory", "processes", "cpu time",
    # "file size", "result size" (the control stream). A limit the caller kept itself (it called
    # SandboxChannel.stop) is the caller's to report.
    limit: str | None
    # The last bytes of stdout and stderr together, and how many bytes were printed in all.
    output_tail: str
    output_bytes: int
    # Seconds from the go signal to the end of the run.
    seconds: float
    # Whether the run was forked from a fork server (warm) or started in a fresh sandbox.
    warm: bool = False
    # The run's non-root uid, where it had one: its processes are the only ones with it.
    uid: int | None = None
    # The name of the run's cgroups, where it had any (one per controller, under PARENT_GROUP).
    cgroup: str | None = None
    # The fork server it was forked from (the name of the server's cgroups), if it was.
    server: str | None = None


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@dataclass
class _Started:
    """A sandbox started and (once its script is ready) waiting for the go signal."""

    process: subprocess.Popen[bytes]
    groups: RunGroups
    scratch: tempfile.TemporaryDirectory[str]
    input_dir: Path
    # The run's non-root uid (None where this process cannot switch uids: not root, or unsafe-dev).
    uid: int | None
    output: TailBuffer
    control: socket.socket
    readers: list[threading.Thread] = field(default_factory=list)

    def alive(self) -> bool:
        return self.process.poll() is None

    def discard(self) -> None:
        _kill_everything(self.process)
        self._close()

    def _close(self) -> None:
        # The run's cgroups first: a process of the run that outlived bwrap (its init in a session
        # of its own, whose parent-death signal did not come) still holds the output pipe, and the
        # reader would wait for it forever; closing the pipe under a blocked reader would block too.
        self.groups.kill_all_and_remove()
        for reader in self.readers:
            reader.join(timeout=5)
        self.control.close()
        if self.process.stdout is not None and not any(reader.is_alive() for reader in self.readers):
            self.process.stdout.close()
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.scratch.cleanup()


def run_sandboxed(
    script: Path,
    files: Mapping[str, bytes],
    arguments: Sequence[str],
    limits: SandboxLimits,
    converse: Callable[[SandboxChannel], None],
    mode: SandboxMode = SandboxMode.BWRAP,
    zygotes: Zygotes | None = None,
) -> SandboxRun:
    """Run `script` (a standalone Python file) in a fresh sandbox.

    `files` appear read-only in the directory named by `--input` (passed to the script, which must
    read one line from stdin, the go signal, before it looks there); the script's working directory
    is an empty private tmpfs. The script talks to `converse` over the socket named by
    `--control-fd`; `converse` runs here, outside the sandbox, keeps whatever it learns, and the
    run is killed when it returns (at once if it called `stop`, else after a short grace).
    With `zygotes` (and root, and writable cgroups), the run is a child of a fork server that has
    imported the script's heavy modules already (graders/sandbox/_zygote.py); else a fresh sandbox.
    Raises SandboxUnavailable without bubblewrap in BWRAP mode.
    """
    if mode is SandboxMode.BWRAP and bwrap_path() is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so untrusted code cannot be run safely; install the "
            "Debian package `bubblewrap` (make system-deps), or set AUTOGRADE_SANDBOX=unsafe-dev on a "
            "development machine"
        )
    if mode is SandboxMode.UNSAFE_DEV:
        logger.warning("UNSAFE: running untrusted code WITHOUT a sandbox (AUTOGRADE_SANDBOX=unsafe-dev)")
    for name in files:
        if "/" in name or name.startswith(".") or name == "":
            raise ValueError(f"input file names must be plain names, got {name!r}")
    if zygotes is not None and mode is SandboxMode.BWRAP and zygotes.possible():
        try:
            return zygotes.run(script, files, arguments, limits, converse)
        except ZygoteFailed as error:
            # Nothing of the run's script ran; a fresh sandbox grades it, and the next run starts
            # a new server.
            logger.warning("fork server unavailable, starting a fresh sandbox: %s", error)
    started = _start(script, arguments, limits, mode)
    try:
        return _finish(started, files, limits, converse)
    finally:
        started._close()


def _start(script: Path, arguments: Sequence[str], limits: SandboxLimits, mode: SandboxMode) -> _Started:
    # Private to this process (0700) and, for the input, to the run's own uid: another local user
    # or another run cannot read a submission's inputs (hidden test sequences, the notebook).
    scratch = tempfile.TemporaryDirectory(prefix="autograde-run-")
    scratch_path = Path(scratch.name)
    input_dir = scratch_path / "input"
    input_dir.mkdir(mode=0o700)
    uid: int | None = None
    if mode is SandboxMode.BWRAP and os.geteuid() == 0:
        uid = RUN_UID_LOW + secrets.randbelow(RUN_UID_HIGH - RUN_UID_LOW)
        os.chown(input_dir, uid, uid)
    control, control_of_run = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    groups = RunGroups()
    if mode is SandboxMode.BWRAP and os.geteuid() == 0:
        groups = create_run_groups(limits.memory_bytes, limits.max_processes, limits.cpu_cores)
    limits_of_entry = entry_limits(limits, groups)
    script_arguments = [
        "--input",
        SANDBOX_INPUT if mode is SandboxMode.BWRAP else str(input_dir),
        CONTROL_FD_ARGUMENT,
        str(control_of_run.fileno()),
        *arguments,
    ]
    limits_of_entry["uid"] = uid
    command, work_dir = _command(script, script_arguments, limits_of_entry, limits, mode, scratch_path)
    command = groups.joined(command)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(control_of_run.fileno(),),
            env=outer_environment(),
            cwd=work_dir,
            start_new_session=True,
        )
    finally:
        control_of_run.close()
    assert process.stdout is not None
    output = TailBuffer(limits.output_tail_bytes)
    started = _Started(process, groups, scratch, input_dir, uid, output, control)
    started.readers = [threading.Thread(target=output.drain, args=(process.stdout,), daemon=True)]
    for reader in started.readers:
        reader.start()
    return started


def _command(
    script: Path,
    script_arguments: list[str],
    entry_limits: dict[str, object],
    limits: SandboxLimits,
    mode: SandboxMode,
    scratch_path: Path,
) -> tuple[list[str], Path]:
    """The run's command line and its working directory on this machine."""
    input_dir = scratch_path / "input"
    if mode is SandboxMode.BWRAP:
        entry_limits["sys_path"] = [SANDBOX_SITE_PACKAGES]
        entry = [SANDBOX_ENTRY, json.dumps(entry_limits), SANDBOX_SCRIPT, *script_arguments]
        return [*bwrap_command(script, input_dir, limits), *entry], scratch_path
    work_dir = scratch_path / "work"
    work_dir.mkdir()
    entry_limits["sys_path"] = [sysconfig.get_paths()["purelib"]]
    command = [sys.executable, "-I", "-S", "-B", str(ENTRY_SCRIPT), json.dumps(entry_limits), str(script)]
    return [*command, *script_arguments], work_dir


def entry_limits(limits: SandboxLimits, groups: RunGroups) -> dict[str, object]:
    """The rlimits the entry script sets before it drops to the run's uid."""
    entry_limits: dict[str, object] = {
        "cpu_seconds": limits.cpu_seconds,
        "max_processes": limits.max_processes,
        "file_size_bytes": limits.file_size_bytes,
        "open_files": limits.open_files,
        "core_bytes": 0,
    }
    if not groups.has_memory_limit:
        # Without a memory cgroup the address space is the only memory limit (it breaks CUDA,
        # so GPU workers need the cgroup). Leave room for the interpreter's and torch's mappings.
        entry_limits["address_space_bytes"] = limits.memory_bytes + 2 * 1024**3
    return entry_limits


def _finish(
    started: _Started,
    files: Mapping[str, bytes],
    limits: SandboxLimits,
    converse: Callable[[SandboxChannel], None],
) -> SandboxRun:
    for name, content in files.items():
        descriptor = os.open(started.input_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            if started.uid is not None:
                os.fchown(file.fileno(), started.uid, started.uid)
            file.write(content)
    process = started.process
    began = time.monotonic()
    assert process.stdin is not None
    try:
        process.stdin.write(GO)
        process.stdin.close()
    except OSError:
        pass  # it died already; the exit code says how
    channel = SandboxChannel(
        started.control, began + limits.wall_seconds, limits.max_result_bytes, MAX_CONTROL_LINE_BYTES
    )
    try:
        converse(channel)
        if not channel.stopped and not channel.overflowed:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, min(EXIT_GRACE_SECONDS, channel.deadline - time.monotonic())))
    finally:
        seconds = time.monotonic() - began
        _kill_everything(process)
    for reader in started.readers:
        reader.join(timeout=5)
    exit_code = process.returncode
    limit: str | None = None
    if channel.overflowed:
        limit = "result size"
    elif not channel.stopped:
        limit = started.groups.limit_hit() or limit_of_signal(exit_code)
        if limit is None and channel.past_deadline():
            limit = "wall time"
    return SandboxRun(
        exit_code=exit_code,
        limit=limit,
        output_tail=started.output.text(),
        output_bytes=started.output.total,
        seconds=seconds,
        warm=False,
        uid=started.uid,
        cgroup=started.groups.name,
    )


def _kill_everything(process: subprocess.Popen[bytes]) -> None:
    """Kill bwrap (its init then takes the run's pid namespace down) and the wrapper's group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    process.wait()


def limit_of_signal(exit_code: int | None) -> str | None:
    if exit_code is None:
        return None
    signals = {
        -signal.SIGXCPU: "cpu time",
        -signal.SIGXFSZ: "file size",
        128 + signal.SIGXCPU: "cpu time",
        128 + signal.SIGXFSZ: "file size",
    }
    return signals.get(exit_code)


class TailBuffer:
    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._data = bytearray()
        self.total = 0

    def drain(self, stream: IO[bytes]) -> None:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            self.total += len(chunk)
            self._data += chunk
            if len(self._data) > 2 * self._keep:
                del self._data[: len(self._data) - self._keep]

    def text(self) -> str:
        return bytes(self._data[-self._keep :]).decode("utf-8", errors="replace")
