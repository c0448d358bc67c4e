from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SandboxMode(StrEnum):
    # Namespaces, a non-root uid, rlimits and (where writable) cgroups: the only mode for real use.
    BWRAP = "bwrap"
    # No isolation at all: the code runs as a plain subprocess. For development machines without
    # bubblewrap only; every run logs a warning.
    UNSAFE_DEV = "unsafe-dev"


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    wall_seconds: float = 120.0
    cpu_seconds: int = 240
    memory_bytes: int = 2 * 1024**3
    max_processes: int = 64
    file_size_bytes: int = 64 * 1024**2
    open_files: int = 256
    # Size of the private work dir and /tmp (tmpfs, counted against the memory limit too).
    work_dir_bytes: int = 256 * 1024**2
    # What comes back: the control stream is cut (and the run failed) beyond this ...
    max_result_bytes: int = 64 * 1024**2
    # ... and only the tail of stdout/stderr is kept.
    output_tail_bytes: int = 16 * 1024
    # CPU time per wall second the run's processes may use together (its cgroup's CFS quota).
    cpu_cores: float = 1.0
    # Bind the NVIDIA device nodes (/dev/nvidia*) into the sandbox, for runs on a GPU worker.
    gpu: bool = False
