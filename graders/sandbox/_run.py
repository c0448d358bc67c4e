"""Start one sandboxed run, feed it files, collect its result stream, and leave nothing running."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from graders.sandbox._cgroup import RunGroups, create_run_groups
from graders.sandbox._limits import SandboxLimits, SandboxMode

logger = logging.getLogger(__name__)

ENTRY_SCRIPT = Path(__file__).with_name("_entry.py")
# Inside the sandbox: where the interpreter, its packages and the run's files appear.
SANDBOX_PYTHON_HOME = "/opt/python"
SANDBOX_SITE_PACKAGES = "/opt/site-packages"
SANDBOX_ENTRY = "/opt/autograde/entry.py"
SANDBOX_SCRIPT = "/opt/autograde/script.py"
SANDBOX_INPUT = "/input"
SANDBOX_WORK = "/work"
SANDBOX_TMP = "/tmp"  # noqa: S108  (the sandbox's own private tmpfs)
# Non-root uids for runs: one drawn per run from a range no real account uses.
RUN_UID_LOW, RUN_UID_HIGH = 200_000, 260_000
RESULT_FD_ARGUMENT = "--result-fd"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing and unsafe-dev mode was not chosen."""


@dataclass(frozen=True, slots=True)
class SandboxRun:
    exit_code: int | None
    # Which limit ended the run, if one did: "wall time", "memory", "processes", "cpu time",
    # "file size", "result size".
    limit: str | None
    # The run's result stream (what the script wrote to its result fd), at most max_result_bytes.
    result: bytes
    # The last bytes of stdout and stderr together, and how many bytes were printed in all.
    output_tail: str
    output_bytes: int
    seconds: float


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def run_sandboxed(
    script: Path,
    files: Mapping[str, bytes],
    arguments: Sequence[str],
    limits: SandboxLimits,
    mode: SandboxMode = SandboxMode.BWRAP,
) -> SandboxRun:
    """Run `script` (a standalone Python file) in a fresh sandbox.

    `files` appear read-only under the directory named by `--input` (passed to the script); the
    script's working directory is an empty private tmpfs; it writes its result to the file
    descriptor named by `--result-fd`. Raises SandboxUnavailable without bubblewrap in BWRAP mode.
    """
    if mode is SandboxMode.BWRAP and bwrap_path() is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so untrusted code cannot be run safely; install the "
            "Debian package `bubblewrap` (make system-deps), or set AUTOGRADE_SANDBOX=unsafe-dev on a "
            "development machine"
        )
    if mode is SandboxMode.UNSAFE_DEV:
        logger.warning("UNSAFE: running untrusted code WITHOUT a sandbox (AUTOGRADE_SANDBOX=unsafe-dev)")
    with tempfile.TemporaryDirectory(prefix="autograde-run-") as scratch:
        scratch_path = Path(scratch)
        input_dir = scratch_path / "input"
        input_dir.mkdir()
        for name, content in files.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"input file names must be plain names, got {name!r}")
            (input_dir / name).write_bytes(content)
            (input_dir / name).chmod(0o644)
        input_dir.chmod(0o755)
        scratch_path.chmod(0o755)
        return _run(script, input_dir, scratch_path, arguments, limits, mode)


def _run(
    script: Path,
    input_dir: Path,
    scratch: Path,
    arguments: Sequence[str],
    limits: SandboxLimits,
    mode: SandboxMode,
) -> SandboxRun:
    result_read, result_write = os.pipe()
    groups = RunGroups()
    is_root = os.geteuid() == 0
    if mode is SandboxMode.BWRAP and is_root:
        groups = create_run_groups(limits.memory_bytes, limits.max_processes)
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
    script_arguments = [
        "--input",
        SANDBOX_INPUT if mode is SandboxMode.BWRAP else str(input_dir),
        RESULT_FD_ARGUMENT,
        str(result_write),
        *arguments,
    ]
    if mode is SandboxMode.BWRAP:
        entry_limits["uid"] = RUN_UID_LOW + secrets.randbelow(RUN_UID_HIGH - RUN_UID_LOW)
        entry_limits["sys_path"] = [SANDBOX_SITE_PACKAGES]
        entry = [SANDBOX_ENTRY, json.dumps(entry_limits), SANDBOX_SCRIPT, *script_arguments]
        command = [*_bwrap_command(script, input_dir, limits), *entry]
        work_dir: Path | None = None
    else:
        work_dir = scratch / "work"
        work_dir.mkdir()
        entry_limits["sys_path"] = [sysconfig.get_paths()["purelib"]]
        command = [
            sys.executable,
            "-I",
            "-S",
            "-B",
            str(ENTRY_SCRIPT),
            json.dumps(entry_limits),
            str(script),
            *script_arguments,
        ]
    if groups.directories:
        # The first process joins the run's groups before it becomes bwrap, so every process of
        # the run is in them from the start.
        joins = " ".join(f"echo $$ > '{path}' &&" for path in groups.procs_files)
        command = ["/bin/sh", "-c", f'{joins} exec "$@"', "sandbox", *command]
    started = time.monotonic()
    output = _TailBuffer(limits.output_tail_bytes)
    result = _CappedBuffer(limits.max_result_bytes)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(result_write,),
            env=_outer_environment(),
            cwd=work_dir or scratch,
            start_new_session=True,
        )
    finally:
        os.close(result_write)
    assert process.stdout is not None
    readers = [
        threading.Thread(target=output.drain, args=(process.stdout,), daemon=True),
        threading.Thread(target=result.drain_fd, args=(result_read,), daemon=True),
    ]
    for reader in readers:
        reader.start()
    limit: str | None = None
    deadline = started + limits.wall_seconds
    while True:
        try:
            process.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
        if result.overflowed:
            limit = "result size"
            break
        if time.monotonic() >= deadline:
            limit = "wall time"
            break
    _kill_everything(process, groups)
    for reader in readers:
        reader.join(timeout=5)
    os.close(result_read)
    process.stdout.close()
    exit_code = process.returncode
    if limit is None:
        limit = groups.limit_hit() or _limit_of_signal(exit_code)
    if result.overflowed:
        limit = "result size"
    groups.kill_all_and_remove()
    return SandboxRun(
        exit_code=exit_code,
        limit=limit,
        result=result.data(),
        output_tail=output.text(),
        output_bytes=output.total,
        seconds=time.monotonic() - started,
    )


def _bwrap_command(script: Path, input_dir: Path, limits: SandboxLimits) -> list[str]:
    python_home = Path(sys.base_prefix)
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    command = [
        "bwrap",
        # Every namespace but the user one: bwrap runs as root, and the run gets a real non-root
        # uid (set by the entry script), so RLIMIT_NPROC applies and no uid maps to root.
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin",
        "--setenv", "HOME", SANDBOX_WORK,
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "OMP_NUM_THREADS", "1",
        "--setenv", "MKL_NUM_THREADS", "1",
        "--setenv", "PYTHONHASHSEED", "0",
        "--setenv", "MPLCONFIGDIR", SANDBOX_TMP,
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        path = Path(top)
        if path.is_symlink():
            command += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            command += ["--ro-bind", top, top]
    command += [
        "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
        "--ro-bind-try", "/etc/localtime", "/etc/localtime",
        "--perms", "0755", "--dir", "/opt",
        "--perms", "0755", "--dir", "/opt/autograde",
        "--ro-bind", str(python_home), SANDBOX_PYTHON_HOME,
        "--ro-bind", sysconfig.get_paths()["purelib"], SANDBOX_SITE_PACKAGES,
        "--ro-bind", str(ENTRY_SCRIPT), SANDBOX_ENTRY,
        "--ro-bind", str(script), SANDBOX_SCRIPT,
        "--ro-bind", str(input_dir), SANDBOX_INPUT,
        "--proc", "/proc",
        "--dev", "/dev",
        "--perms", "0777", "--size", str(limits.work_dir_bytes), "--tmpfs", SANDBOX_WORK,
        "--perms", "1777", "--size", str(limits.work_dir_bytes), "--tmpfs", SANDBOX_TMP,
        "--chdir", SANDBOX_WORK,
        "--cap-add", "CAP_SETUID",
        "--cap-add", "CAP_SETGID",
        f"{SANDBOX_PYTHON_HOME}/bin/{python}", "-I", "-S", "-B",
    ]  # fmt: skip
    return command


def _outer_environment() -> dict[str, str]:
    """bwrap itself sees no secret either (it clears the sandbox's environment anyway)."""
    return {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}


def _kill_everything(process: subprocess.Popen[bytes], groups: RunGroups) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    process.wait()


def _limit_of_signal(exit_code: int | None) -> str | None:
    if exit_code is None:
        return None
    signals = {
        -signal.SIGXCPU: "cpu time",
        -signal.SIGXFSZ: "file size",
        128 + signal.SIGXCPU: "cpu time",
        128 + signal.SIGXFSZ: "file size",
    }
    return signals.get(exit_code)


class _TailBuffer:
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


class _CappedBuffer:
    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflowed = False

    def drain_fd(self, fd: int) -> None:
        while chunk := os.read(fd, 1 << 20):
            if self._size + len(chunk) > self._cap:
                self.overflowed = True
                continue  # keep draining so the writer is not blocked; drop the excess
            self._chunks.append(chunk)
            self._size += len(chunk)

    def data(self) -> bytes:
        return b"".join(self._chunks)
