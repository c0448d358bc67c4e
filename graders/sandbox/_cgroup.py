"""One cgroup (v1 `pids`, `memory` and `cpu`) per sandboxed run, where this process may create them.

A fork bomb is stopped by `pids.max` even though the sandbox uid's RLIMIT_NPROC is shared with
other runs; `memory.limit_in_bytes` counts the run's tmpfs pages too and, unlike RLIMIT_AS, does
not break CUDA. Where the hierarchy is missing or read-only (a developer's laptop, cgroup v2
without delegation), runs fall back to rlimits alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT_GROUP = "autograde-sandbox"
STALE_GROUP_SECONDS = 60.0
CPU_PERIOD_MICROSECONDS = 100_000


@dataclass
class RunGroups:
    """The groups of one run; `procs_files` are where the run's first process writes its pid."""

    directories: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.directories[0].name if self.directories else None

    @property
    def procs_files(self) -> list[Path]:
        return [directory / "cgroup.procs" for directory in self.directories]

    @property
    def has_memory_limit(self) -> bool:
        return any(_controller(directory) == "memory" for directory in self.directories)

    def limit_hit(self) -> str | None:
        """Which limit the run ran into, if a group recorded one."""
        for directory in self.directories:
            controller = _controller(directory)
            if controller == "memory":
                oom = _read_text(directory / "memory.oom_control").split()
                kills = _read_int_text(oom[oom.index("oom_kill") + 1]) if "oom_kill" in oom else 0
                if kills > 0 or _read_int(directory / "memory.failcnt") > 0:
                    return "memory"
            if controller == "pids":
                events = _read_text(directory / "pids.events")
                if events.startswith("max") and _read_int_text(events.split()[-1]) > 0:
                    return "processes"
        return None

    def joined(self, command: list[str]) -> list[str]:
        """`command`, started by a shell that first joins these groups, so that every process of
        the command is in them from its first instruction on."""
        if not self.directories:
            return command
        joins = " ".join(f"echo $$ > '{path}' &&" for path in self.procs_files)
        return ["/bin/sh", "-c", f'{joins} exec "$@"', "sandbox", *command]

    def kill_all_and_remove(self) -> None:
        """SIGKILL every process left in the groups, then remove the groups."""
        self.kill_all()
        self.remove()

    def kill_all(self) -> None:
        """SIGKILL every process in the groups until none is left (a fork bomb is bounded by pids.max)."""
        for directory in self.directories:
            for _attempt in range(50):
                pids = [int(line) for line in _read_text(directory / "cgroup.procs").split() if line]
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)

    def remove(self) -> None:
        for directory in self.directories:
            try:
                directory.rmdir()
            except OSError as error:
                logger.warning("could not remove cgroup %s: %s", directory, error)


def create_run_groups(
    memory_bytes: int, max_processes: int, cpu_cores: float, under: str = PARENT_GROUP
) -> RunGroups:
    """The groups of one run, below `under` (a path relative to each controller's root)."""
    quota = max(1000, int(cpu_cores * CPU_PERIOD_MICROSECONDS))
    return _create_groups(
        {
            "pids": {"pids.max": str(max_processes)},
            "memory": {
                "memory.limit_in_bytes": str(memory_bytes),
                "memory.swappiness": "0",
            },
            "cpu": {"cpu.cfs_period_us": str(CPU_PERIOD_MICROSECONDS), "cpu.cfs_quota_us": str(quota)},
        },
        under,
    )


def create_server_groups() -> RunGroups:
    """The groups of a fork server (no limits of their own: each run's group below has them)."""
    return _create_groups({"pids": {}, "memory": {}, "cpu": {}}, PARENT_GROUP)


def _create_groups(settings: dict[str, dict[str, str]], under: str) -> RunGroups:
    groups = RunGroups()
    name = uuid.uuid4().hex[:16]
    for controller, values in settings.items():
        base = CGROUP_ROOT / controller
        if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
            continue
        try:
            parent = base / under
            parent.mkdir(exist_ok=True)
            _remove_stale_groups(parent)
            directory = parent / name
            directory.mkdir()
        except OSError as error:
            logger.warning("cannot create a %s cgroup: %s", controller, error)
            continue
        groups.directories.append(directory)
        for key, value in values.items():
            try:
                (directory / key).write_text(value)
            except OSError as error:
                if key != "memory.swappiness":
                    logger.warning("cannot set %s: %s", key, error)
        if "memory.limit_in_bytes" in values:
            # Swap counts too where the kernel accounts it, so swapping cannot dodge the limit.
            with contextlib.suppress(OSError):
                (directory / "memory.memsw.limit_in_bytes").write_text(values["memory.limit_in_bytes"])
    return groups


def _remove_stale_groups(parent: Path) -> None:
    """Remove the empty groups of runs whose grading process was killed before it could clean up
    (their processes died with it: bwrap runs with --die-with-parent). The kernel refuses to remove
    a group that still holds a process, and a group younger than a minute may be a run starting."""
    now = time.time()
    for directory in parent.iterdir():
        try:
            if directory.is_dir() and now - directory.stat().st_mtime > STALE_GROUP_SECONDS:
                _remove_stale_groups(directory)  # a fork server's runs, first
                directory.rmdir()
        except OSError:
            pass


def _controller(directory: Path) -> str:
    return directory.relative_to(CGROUP_ROOT).parts[0]


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _read_int(path: Path) -> int:
    return _read_int_text(_read_text(path).strip())


def _read_int_text(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
