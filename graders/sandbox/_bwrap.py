"""The bubblewrap command line of a run: what exists inside the sandbox, and how it is isolated."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from graders.sandbox._limits import SandboxLimits

ENTRY_SCRIPT = Path(__file__).with_name("_entry.py")
ZYGOTE_SCRIPT = Path(__file__).with_name("_zygote_server.py")
# Inside the sandbox: where the interpreter, its packages and the run's files appear.
SANDBOX_PYTHON_HOME = "/opt/python"
SANDBOX_SITE_PACKAGES = "/opt/site-packages"
SANDBOX_ENTRY = "/opt/autograde/entry.py"
SANDBOX_SCRIPT = "/opt/autograde/script.py"
SANDBOX_ZYGOTE = "/opt/autograde/zygote.py"
SANDBOX_SPOOL = "/spool"
SANDBOX_CGROUPS = "/cgroup"
SANDBOX_INPUT = "/input"
SANDBOX_WORK = "/work"
SANDBOX_TMP = "/tmp"  # noqa: S108  (the sandbox's own private tmpfs)


def bwrap_command(script: Path, input_dir: Path, limits: SandboxLimits) -> list[str]:
    """A fresh sandbox for one run: the entry script drops to the run's uid, then runs `script`."""
    return [
        *_shared_view(),
        "--ro-bind", str(ENTRY_SCRIPT), SANDBOX_ENTRY,
        "--ro-bind", str(script), SANDBOX_SCRIPT,
        "--ro-bind", str(input_dir), SANDBOX_INPUT,
        "--proc", "/proc",
        "--dev", "/dev",
        *_gpu_devices(limits),
        "--perms", "0777", "--size", str(limits.work_dir_bytes), "--tmpfs", SANDBOX_WORK,
        "--perms", "1777", "--size", str(limits.work_dir_bytes), "--tmpfs", SANDBOX_TMP,
        "--chdir", SANDBOX_WORK,
        "--cap-add", "CAP_SETUID",
        "--cap-add", "CAP_SETGID",
        f"{SANDBOX_PYTHON_HOME}/bin/{_python()}", "-I", "-S", "-B",
    ]  # fmt: skip


def zygote_command(script: Path, spool: Path, cgroups: dict[str, Path], gpu: bool) -> list[str]:
    """The fork server's sandbox: the same view of the machine as a fresh run's, plus the spool of
    the runs' inputs and the server's cgroups (each child mounts only its own input and unmounts
    both before the run's code starts), and the capabilities to build each child's namespaces."""
    command = [
        *_shared_view(die_with_parent=False),
        "--ro-bind", str(ZYGOTE_SCRIPT), SANDBOX_ZYGOTE,
        "--ro-bind", str(ENTRY_SCRIPT), SANDBOX_ENTRY,
        "--ro-bind", str(script), SANDBOX_SCRIPT,
        "--bind", str(spool), SANDBOX_SPOOL,
        "--dir", SANDBOX_INPUT,
        "--proc", "/proc",
        "--dev", "/dev",
        *_gpu_devices(SandboxLimits(gpu=gpu)),
        # Mount points only: each child mounts its own tmpfs on them.
        "--perms", "0700", "--size", "4096", "--tmpfs", SANDBOX_WORK,
        "--perms", "0700", "--size", "4096", "--tmpfs", SANDBOX_TMP,
        "--chdir", "/",
    ]  # fmt: skip
    for controller, directory in sorted(cgroups.items()):
        command += ["--bind", str(directory), f"{SANDBOX_CGROUPS}/{controller}"]
    return [
        *command,
        "--cap-add", "CAP_SYS_ADMIN",
        "--cap-add", "CAP_NET_ADMIN",
        "--cap-add", "CAP_SETUID",
        "--cap-add", "CAP_SETGID",
        f"{SANDBOX_PYTHON_HOME}/bin/{_python()}", "-I", "-S", "-B",
    ]  # fmt: skip


def _shared_view(die_with_parent: bool = True) -> list[str]:
    """Namespaces, environment and the read-only system every run sees."""
    python_home = Path(sys.base_prefix)
    command = [
        "bwrap",
        # Every namespace but the user one: bwrap runs as root, and the run gets a real non-root
        # uid (set by the entry script), so RLIMIT_NPROC applies and no uid maps to root.
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup",
        # The parent-death signal comes when the starting *thread* ends: right for a run, which
        # its thread waits for; a fork server outlives the thread that started it and exits when
        # its request socket closes instead (the grading process is done or dead).
        *(["--die-with-parent"] if die_with_parent else []),
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
    ]  # fmt: skip
    return command


def _python() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def _gpu_devices(limits: SandboxLimits) -> list[str]:
    """The NVIDIA device nodes, bound for GPU runs only (a minimal /dev holds none)."""
    if not limits.gpu:
        return []
    binds = []
    for node in sorted(Path("/dev").glob("nvidia*")):
        if node.is_char_device():
            binds += ["--dev-bind", str(node), str(node)]
    return binds


def outer_environment() -> dict[str, str]:
    """bwrap itself sees no secret either (it clears the sandbox's environment anyway)."""
    return {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
