"""One cgroup (v1 `pids` and `memory`) per sandboxed run, where this process may create them.

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
        return any(directory.parent.parent.name == "memory" for directory in self.directories)

    def limit_hit(self) -> str | None:
        """Which limit the run ran into, if a group recorded one."""
        for directory in self.directories:
            controller = directory.parent.parent.name
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

    def kill_all_and_remove(self) -> None:
        """SIGKILL every process left in the groups, then remove the groups."""
        for directory in self.directories:
            for _attempt in range(50):
                pids = [int(line) for line in _read_text(directory / "cgroup.procs").split() if line]
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)
            try:
                directory.rmdir()
            except OSError as error:
                logger.warning("could not remove cgroup %s: %s", directory, error)


def create_run_groups(memory_bytes: int, max_processes: int) -> RunGroups:
    groups = RunGroups()
    name = uuid.uuid4().hex[:16]
    settings = {
        "pids": {"pids.max": str(max_processes)},
        "memory": {
            "memory.limit_in_bytes": str(memory_bytes),
            "memory.swappiness": "0",
        },
    }
    for controller, values in settings.items():
        base = CGROUP_ROOT / controller
        if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
            continue
        try:
            parent = base / PARENT_GROUP
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
        if controller == "memory":
            # Swap counts too where the kernel accounts it, so swapping cannot dodge the limit.
            with contextlib.suppress(OSError):
                (directory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
    return groups


def _remove_stale_groups(parent: Path) -> None:
    """Remove the empty groups of runs whose grading process was killed before it could clean up
    (their processes died with it: bwrap runs with --die-with-parent). The kernel refuses to remove
    a group that still holds a process, and a group younger than a minute may be a run starting."""
    now = time.time()
    for directory in parent.iterdir():
        try:
            if directory.is_dir() and now - directory.stat().st_mtime > STALE_GROUP_SECONDS:
                directory.rmdir()
        except OSError:
            pass


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
