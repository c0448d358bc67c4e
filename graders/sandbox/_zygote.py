"""Sandboxed runs forked from a fork server ("zygote") that has already imported torch.

A fresh bubblewrap sandbox costs ~2 s of CPU before the first cell (the interpreter, `import
torch`); under a deadline burst every notebook paid it. A `Zygotes` keeps one server per kind of
run (script, GPU or not), started once per grading process, inside a sandbox of its own; each run
is a child of it that builds its own namespaces, tmpfs, uid, cgroups, rlimits and seccomp filter
before the run's script starts (graders/sandbox/_zygote_server.py says how). The server holds no
submission: a run's input files are written here into the run's own spool directory, which only
that run's child mounts, and the run's socket and pipes are created here and passed through.
Everything a run started is killed through its cgroups when it ends, as for a fresh sandbox.

The server needs what the isolation of its children needs: root (uids and namespaces) and writable
cgroups (killing a run and all it started). Where either is missing, runs start fresh sandboxes.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from graders.sandbox._bwrap import SANDBOX_SITE_PACKAGES, SANDBOX_ZYGOTE, outer_environment, zygote_command
from graders.sandbox._cgroup import (
    CGROUP_ROOT,
    PARENT_GROUP,
    RunGroups,
    create_run_groups,
    create_server_groups,
)
from graders.sandbox._channel import SandboxChannel
from graders.sandbox._limits import SandboxLimits
from graders.sandbox._run import (
    EXIT_GRACE_SECONDS,
    GO,
    MAX_CONTROL_LINE_BYTES,
    RUN_UID_HIGH,
    RUN_UID_LOW,
    SandboxRun,
    TailBuffer,
    ZygoteFailed,
    entry_limits,
    limit_of_signal,
)

logger = logging.getLogger(__name__)

# Starting a server imports torch: seconds on an idle machine, more under a burst.
SERVER_READY_SECONDS = 120.0
# A fork and a reply: milliseconds; this only bounds a server that hangs.
SERVER_REPLY_SECONDS = 10.0
MAX_REPLY_BYTES = 4096
# The controllers a server's runs need: pids to kill everything a run started, memory for its limit.
REQUIRED_CONTROLLERS = ("pids", "memory")


@dataclass(frozen=True, slots=True)
class _ServerKey:
    script: Path
    gpu: bool


class _Server:
    """One fork server: its sandbox, its request socket, its spool and its cgroups."""

    def __init__(self, key: _ServerKey, preload: Sequence[str]) -> None:
        self.key = key
        self._lock = threading.Lock()
        self.spool = Path(tempfile.mkdtemp(prefix="autograde-zygote-"))
        self.groups = create_server_groups()
        controllers = {
            directory.relative_to(CGROUP_ROOT).parts[0]: directory for directory in self.groups.directories
        }
        if any(name not in controllers for name in REQUIRED_CONTROLLERS):
            self._remove_files()
            raise ZygoteFailed(
                f"the cgroup controllers {', '.join(REQUIRED_CONTROLLERS)} are not all writable"
            )
        self.controllers = controllers
        self._requests, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {
            "preload": list(preload),
            "request_fd": server_end.fileno(),
            "sys_path": [SANDBOX_SITE_PACKAGES],
        }
        command = zygote_command(key.script, self.spool, controllers, key.gpu)
        self.output = TailBuffer(16 * 1024)
        try:
            self.process = subprocess.Popen(
                self.groups.joined([*command, SANDBOX_ZYGOTE, json.dumps(config)]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(server_end.fileno(),),
                env=outer_environment(),
                start_new_session=True,
            )
        finally:
            server_end.close()
        assert self.process.stdout is not None
        self._reader = threading.Thread(
            target=_drain_and_close, args=(self.output, self.process.stdout), daemon=True
        )
        self._reader.start()
        if self._receive(time.monotonic() + SERVER_READY_SECONDS) != {"ready": True}:
            self.close()
            raise ZygoteFailed(f"the fork server did not start: {self.output.text()[-2000:]}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def start_run(self, run: str, request: dict[str, object], descriptors: Sequence[int]) -> None:
        with self._lock:
            try:
                self._requests.settimeout(SERVER_REPLY_SECONDS)
                socket.send_fds(self._requests, [json.dumps(request).encode()], list(descriptors))
            except OSError as error:
                raise ZygoteFailed(f"the fork server is gone: {error}") from error
            reply = self._receive(time.monotonic() + SERVER_REPLY_SECONDS)
        if reply != {"started": run}:
            raise ZygoteFailed(f"the fork server did not start the run: {reply!r}")

    def _receive(self, until: float) -> object:
        while (remaining := until - time.monotonic()) > 0:
            ready, _, _ = select.select([self._requests], [], [], min(remaining, 0.5))
            if ready:
                try:
                    message = self._requests.recv(MAX_REPLY_BYTES)
                except OSError:
                    return None
                try:
                    return json.loads(message) if message else None
                except ValueError:
                    return None
            if not self.alive():
                return None
        return None

    def close(self) -> None:
        self._requests.close()  # the server exits at end of stream; the kill makes sure
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, 9)
        self.process.kill()
        self.process.wait()
        self.groups.kill_all()
        self._reader.join(timeout=5)
        self._remove_files()

    def _remove_files(self) -> None:
        # The runs' groups below the server's are removed by their runs; a server's own only then.
        self.groups.remove()
        shutil.rmtree(self.spool, ignore_errors=True)


class Zygotes:
    """The fork servers of one grading process, one per kind of run, each started on first use."""

    def __init__(self, preload: Sequence[str] = ()) -> None:
        self.preload = tuple(preload)
        self._lock = threading.Lock()
        self._servers: dict[_ServerKey, _Server] = {}
        atexit.register(self.close)

    @staticmethod
    def possible() -> bool:
        """Whether this process can isolate a server's children: root, and cgroups it may create."""
        if os.geteuid() != 0:
            return False
        return all(os.access(CGROUP_ROOT / controller, os.W_OK) for controller in REQUIRED_CONTROLLERS)

    def run(
        self,
        script: Path,
        files: Mapping[str, bytes],
        arguments: Sequence[str],
        limits: SandboxLimits,
        converse: Callable[[SandboxChannel], None],
    ) -> SandboxRun:
        """Like run_sandboxed: `script` in a new child of the server for its kind; raises
        ZygoteFailed (before the run's script started) if the server cannot be had."""
        server = self._server(_ServerKey(script, limits.gpu))
        try:
            return _run_child(server, files, arguments, limits, converse)
        except ZygoteFailed:
            self._discard(server)
            raise

    def server_pids(self) -> list[int]:
        """The host pids of the servers' own processes (bwrap, its init, the server), for measuring."""
        return [pid for group in self._pids_groups() for pid in _procs(group)]

    def run_pids(self) -> list[int]:
        """The host pids of every process of the runs going on now, for measuring."""
        return [
            pid
            for group in self._pids_groups()
            for run in group.iterdir()
            if run.is_dir()
            for pid in _procs(run)
        ]

    def _pids_groups(self) -> list[Path]:
        with self._lock:
            servers = list(self._servers.values())
        return [server.controllers["pids"] for server in servers]

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()

    def _server(self, key: _ServerKey) -> _Server:
        with self._lock:
            server = self._servers.get(key)
            if server is not None and not server.alive():
                del self._servers[key]
                server.close()
                server = None
            if server is None:
                # Under the lock: two runs arriving together start one server, not two.
                server = _Server(key, self.preload)
                self._servers[key] = server
            return server

    def _discard(self, server: _Server) -> None:
        with self._lock:
            if self._servers.get(server.key) is server:
                del self._servers[server.key]
        server.close()


def _run_child(
    server: _Server,
    files: Mapping[str, bytes],
    arguments: Sequence[str],
    limits: SandboxLimits,
    converse: Callable[[SandboxChannel], None],
) -> SandboxRun:
    name = uuid.uuid4().hex[:16]
    uid = RUN_UID_LOW + secrets.randbelow(RUN_UID_HIGH - RUN_UID_LOW)
    run_dir = server.spool / name
    groups = RunGroups()
    ends: list[int] = []
    try:
        _write_input(run_dir, files, uid)
        groups = create_run_groups(
            limits.memory_bytes,
            limits.max_processes,
            limits.cpu_cores,
            under=f"{PARENT_GROUP}/{server.groups.name}",
        )
        if len(groups.directories) < len(server.controllers):
            raise ZygoteFailed("the run's cgroups could not be created")
        control, control_of_run = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stdin_read, stdin_write = os.pipe()
        output_read, output_write = os.pipe()
        status_read, status_write = os.pipe()
        ends = [control_of_run.detach(), stdin_read, output_write, status_write]
        request = {
            "run": name,
            "uid": uid,
            "limits": entry_limits(limits, groups),
            "work_bytes": limits.work_dir_bytes,
            "arguments": list(arguments),
            # Where the child finds each group: below the server's own, bound at /cgroup/CONTROLLER.
            "groups": [
                f"{directory.relative_to(CGROUP_ROOT).parts[0]}/{groups.name}"
                for directory in groups.directories
            ],
        }
        try:
            server.start_run(name, request, ends)
        finally:
            for end in ends:
                os.close(end)
        run = _finish(control, stdin_write, output_read, status_read, groups, limits, uid, converse)
        return dataclasses.replace(run, server=server.groups.name)
    finally:
        groups.kill_all_and_remove()
        shutil.rmtree(run_dir, ignore_errors=True)


def _write_input(run_dir: Path, files: Mapping[str, bytes], uid: int) -> None:
    """The run's input, readable by the run's uid only (the spool itself is the server's, 0700)."""
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, uid, uid)
    for file_name, content in files.items():
        descriptor = os.open(run_dir / file_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            os.fchown(file.fileno(), uid, uid)
            file.write(content)


def _finish(
    control: socket.socket,
    stdin_write: int,
    output_read: int,
    status_read: int,
    groups: RunGroups,
    limits: SandboxLimits,
    uid: int,
    converse: Callable[[SandboxChannel], None],
) -> SandboxRun:
    output = TailBuffer(limits.output_tail_bytes)
    reader = threading.Thread(target=_drain_and_close, args=(output, output_read), daemon=True)
    reader.start()
    began = time.monotonic()
    with contextlib.suppress(OSError):
        os.write(stdin_write, GO)
    os.close(stdin_write)
    channel = SandboxChannel(
        control, began + limits.wall_seconds, limits.max_result_bytes, MAX_CONTROL_LINE_BYTES
    )
    exit_code: int | None = None
    try:
        converse(channel)
        if not channel.stopped and not channel.overflowed:
            grace = max(0.0, min(EXIT_GRACE_SECONDS, channel.deadline - time.monotonic()))
            exit_code = _read_exit(status_read, time.monotonic() + grace)
    finally:
        seconds = time.monotonic() - began
        # Everything the run started, wherever it went (its own session, a double fork): the
        # cgroups hold every process of the run, and nothing in them may leave.
        groups.kill_all()
        control.close()
    if exit_code is None:
        exit_code = _read_exit(status_read, time.monotonic() + EXIT_GRACE_SECONDS)
    os.close(status_read)
    reader.join(timeout=5)
    limit: str | None = None
    if channel.overflowed:
        limit = "result size"
    elif not channel.stopped:
        limit = groups.limit_hit() or limit_of_signal(exit_code)
        if limit is None and channel.past_deadline():
            limit = "wall time"
    return SandboxRun(
        exit_code=exit_code,
        limit=limit,
        output_tail=output.text(),
        output_bytes=output.total,
        seconds=seconds,
        warm=True,
        uid=uid,
        cgroup=groups.name,
    )


def _procs(group: Path) -> list[int]:
    try:
        return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]
    except OSError:
        return []  # a run that just ended


def _drain_and_close(output: TailBuffer, stream: int | IO[bytes]) -> None:
    with os.fdopen(stream, "rb") if isinstance(stream, int) else stream as readable:
        output.drain(readable)


def _read_exit(status_read: int, until: float) -> int | None:
    """The exit status of the run's first process, as its parent in the server reported it."""
    data = bytearray()
    while (remaining := until - time.monotonic()) > 0:
        ready, _, _ = select.select([status_read], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(status_read, 256)
        if not chunk:
            break
        data += chunk
    try:
        report = json.loads(bytes(data))
    except ValueError:
        return None
    exit_code = report.get("exit") if isinstance(report, dict) else None
    return exit_code if isinstance(exit_code, int) else None
