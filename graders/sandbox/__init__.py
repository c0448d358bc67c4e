"""Running untrusted code: bubblewrap namespaces, a non-root uid, rlimits, cgroups, timeouts.

The sandbox hands back plain bytes (lines on the run's control socket, result pipes, the tail of
its output); callers parse them as data (JSON, NPZ with allow_pickle=False), never as pickles.
"""

from graders.sandbox._channel import PipeRead, SandboxChannel
from graders.sandbox._limits import SandboxLimits, SandboxMode
from graders.sandbox._probe import sandbox_problem
from graders.sandbox._run import SandboxRun, SandboxUnavailable, bwrap_path, run_sandboxed
from graders.sandbox._zygote import Zygotes

__all__ = [
    "PipeRead",
    "SandboxChannel",
    "SandboxLimits",
    "SandboxMode",
    "SandboxRun",
    "SandboxUnavailable",
    "Zygotes",
    "bwrap_path",
    "run_sandboxed",
    "sandbox_problem",
]
