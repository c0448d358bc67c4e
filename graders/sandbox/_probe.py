"""Can the sandbox run here? One tiny real run, for a worker to make before it takes any job.

A worker whose sandbox cannot start (bubblewrap missing, or a container that forbids namespaces)
would otherwise grade every notebook `error`; with this check it refuses to start instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from graders.sandbox._channel import SandboxChannel
from graders.sandbox._limits import SandboxLimits, SandboxMode
from graders.sandbox._run import SandboxUnavailable, run_sandboxed

PROBE_SCRIPT = Path(__file__).with_name("_probe_script.py")
PROBE_LIMITS = SandboxLimits(
    wall_seconds=30.0,
    cpu_seconds=30,
    memory_bytes=512 * 1024**2,
    max_processes=16,
    work_dir_bytes=1024**2,
    max_result_bytes=64 * 1024,
    output_tail_bytes=2048,
)
PROBE_INPUT = "probe.txt"
# bwrap clears the environment and sets only these (PWD: its --chdir): none of the worker's secrets.
SANDBOX_ENVIRONMENT = {
    *("HOME", "LANG", "MKL_NUM_THREADS", "MPLCONFIGDIR", "OMP_NUM_THREADS", "PATH", "PWD", "PYTHONHASHSEED"),
}


def sandbox_problem(mode: SandboxMode = SandboxMode.BWRAP) -> str | None:
    """None when a sandboxed run works here; otherwise why not, in one line.

    In unsafe-dev mode there is no sandbox to check, and None is returned.
    """
    if mode is SandboxMode.UNSAFE_DEV:
        return None
    report_lines: list[bytes] = []

    def converse(channel: SandboxChannel) -> None:
        line = channel.read_line(channel.deadline)
        if line is not None:
            report_lines.append(line)
        channel.stop()

    try:
        run = run_sandboxed(PROBE_SCRIPT, {PROBE_INPUT: b"probe"}, [], PROBE_LIMITS, converse, mode)
    except (SandboxUnavailable, OSError) as error:
        return str(error)
    if not report_lines:
        last_line = (run.output_tail.strip().splitlines() or ["(no output)"])[-1]
        return f"a sandboxed run failed (exit {run.exit_code}, limit {run.limit}): {last_line[:300]}"
    try:
        report = json.loads(report_lines[0])
    except ValueError:
        return "a sandboxed run handed back no readable result"
    if report.get("input") != [PROBE_INPUT]:
        return "a sandboxed run did not see its input files"
    leaked = set(report.get("environment", [])) - SANDBOX_ENVIRONMENT
    if leaked:
        return f"a sandboxed run saw the worker's environment: {', '.join(sorted(leaked))[:300]}"
    return None
