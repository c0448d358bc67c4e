"""The first code to run inside the sandbox (standalone: the graders package is not mounted there).

Started as root inside bubblewrap with only CAP_SETUID and CAP_SETGID, it sets the rlimits, drops
to the run's non-root uid (which clears every capability), then runs the caller's script. Nothing
of the caller's script or of student code runs before the uid is dropped.

    python -I -S -B entry.py LIMITS_JSON SCRIPT [ARG ...]
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import sys

_RLIMITS = {
    "cpu_seconds": resource.RLIMIT_CPU,
    "address_space_bytes": resource.RLIMIT_AS,
    "max_processes": resource.RLIMIT_NPROC,
    "file_size_bytes": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE,
    "core_bytes": resource.RLIMIT_CORE,
}


def set_limits_and_drop_root(limits: dict[str, object]) -> None:
    """The rlimits, then the run's uid (which clears every capability). The fork server's children
    call this too (graders/sandbox/_zygote_server.py loads this file)."""
    for name, which in _RLIMITS.items():
        value = limits.get(name)
        if value is not None:
            resource.setrlimit(which, (int(value), int(value)))  # type: ignore[call-overload]
    uid = limits.get("uid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(int(uid))  # type: ignore[call-overload]
        os.setuid(int(uid))  # type: ignore[call-overload]
        if os.getuid() == 0 or os.geteuid() == 0:
            raise SystemExit("sandbox: could not drop root")


def main() -> None:
    limits = json.loads(sys.argv[1])
    script = sys.argv[2]
    set_limits_and_drop_root(limits)
    for path in limits.get("sys_path", []):
        sys.path.append(path)
    os.umask(0o077)
    sys.argv = [script, *sys.argv[3:]]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
