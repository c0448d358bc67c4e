"""The fork server of sandboxed runs (standalone: the graders package is not mounted in the sandbox).

It starts inside bubblewrap as root with CAP_SYS_ADMIN, CAP_SETUID and CAP_SETGID, imports the
modules every run needs (torch, numpy: the ~2 s each fresh sandbox paid), then forks one child per
request from the grading process. It never reads a submission, an input file or a result: the
grading process hands each run its input as a directory under /spool, which only the run's child
mounts, and the run's sockets and pipes as descriptors that the server passes on and closes unread.

Each child, before any of the caller's code runs:
1. joins the run's cgroups (pids, memory, cpu; made by the grading process) and leaves the server's
   session;
2. enters new mount, PID, network, IPC, UTS and cgroup namespaces, mounts fresh tmpfs on /work,
   /tmp and /dev/shm, binds its own input read-only on /input, and unmounts /spool and the cgroup
   tree, so nothing it can write or read was ever another run's;
3. forks the run's first process, pid 1 of the new PID namespace (when it ends, the kernel kills
   everything else in the namespace), which mounts its own /proc, keeps only the run's descriptors,
   sets the rlimits, drops to the run's uid (clearing every capability) and loads a seccomp filter;
4. reports that process's exit status on the run's status pipe, then exits.
The grading process kills every process of the run through its cgroups when the run ends.

    python -I -S -B zygote.py CONFIG_JSON     (CONFIG_JSON names the request socket's descriptor)

The server exits when the grading process closes the request socket (or dies): bwrap's init then
takes every process of the server's PID namespace down with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import importlib
import importlib.util
import json
import os
import runpy
import signal
import socket
import struct
import sys
import traceback
from types import ModuleType

SCRIPT = "/opt/autograde/script.py"
ENTRY = "/opt/autograde/entry.py"
SPOOL = "/spool"
CGROUPS = "/cgroup"
INPUT = "/input"
WORK = "/work"
SHARED_MEMORY = "/dev/shm"  # noqa: S108  (each run mounts its own tmpfs here)
MAX_REQUEST_BYTES = 64 * 1024
RUN_DESCRIPTORS = 4  # control socket, stdin (read end), output (write end), status (write end)
RUN_CONTROL_FD = 3  # where the run's control socket is in the run's first process
SETUP_FAILED = 125
NOBODY = 65534

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40


# What no grading run needs and what would let a run reach past its namespaces or the kernel's
# defences: other processes' memory, new namespaces or mounts, kernel keyrings, eBPF, performance
# counters, io_uring (its own path around this filter), loading modules. Everything else is left
# to the namespaces, the uid and the cgroups (a default-deny list would break on the next torch).
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "lookup_dcookie",
    "name_to_handle_at", "open_by_handle_at", "settimeofday", "clock_settime", "adjtimex",
    "personality", "uselib", "vhangup", "nfsservctl",
)  # fmt: skip

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    result = _libc.mount(_bytes(source), target.encode(), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data))
    _check(result, f"mount {target}")


def _bytes(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _unmount(target: str) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def serve(config: dict[str, object]) -> None:
    sys.path.extend(config.get("sys_path", []))  # type: ignore[arg-type]
    for name in config.get("preload", []):  # type: ignore[attr-defined]
        importlib.import_module(str(name))
    import pyseccomp  # type: ignore[import-untyped]  # noqa: F401  (loads libseccomp once, not per run)

    _entry()

    # Forking is only safe while this process has one thread (torch starts none at import with
    # OMP_NUM_THREADS=1; a thread would leave its locks held in every child).
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        raise SystemExit(f"zygote: {threads} threads after the imports; forking would not be safe")
    os.makedirs(SHARED_MEMORY, exist_ok=True)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    requests = socket.socket(fileno=int(config["request_fd"]))  # type: ignore[call-overload]
    requests.sendall(b'{"ready": true}')
    while True:
        try:
            message, descriptors, _flags, _address = socket.recv_fds(
                requests, MAX_REQUEST_BYTES, RUN_DESCRIPTORS
            )
        except OSError:
            return
        if not message:
            return  # the grading process closed the socket: it is done with this server
        reply = _start_run(requests, message, descriptors)
        for descriptor in descriptors:
            os.close(descriptor)
        requests.sendall(json.dumps(reply).encode())


def _start_run(requests: socket.socket, message: bytes, descriptors: list[int]) -> dict[str, object]:
    if len(descriptors) != RUN_DESCRIPTORS:
        return {"error": f"expected {RUN_DESCRIPTORS} descriptors, got {len(descriptors)}"}
    try:
        request = json.loads(message)
        pid = os.fork()
    except (ValueError, OSError) as error:
        return {"error": str(error)}
    if pid == 0:
        code = SETUP_FAILED
        try:
            requests.close()
            code = _run_child(request, descriptors)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return {"started": request.get("run")}


def _run_child(request: dict[str, object], descriptors: list[int]) -> int:
    """The run's outer process: isolate, fork the run's first process, report its exit status."""
    control, stdin_read, output_write, status_write = descriptors
    os.dup2(output_write, 1)
    os.dup2(output_write, 2)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    for group in request["groups"]:  # type: ignore[attr-defined]
        with open(f"{CGROUPS}/{group}/cgroup.procs", "w") as procs:
            procs.write("0")  # 0: the writing process
    _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _loopback_up()
    uid = int(request["uid"])  # type: ignore[call-overload]
    size = int(request["work_bytes"])  # type: ignore[call-overload]
    private = MS_NOSUID | MS_NODEV
    _mount("tmpfs", WORK, "tmpfs", private, f"size={size},mode=0700,uid={uid},gid={uid}")
    _mount("tmpfs", "/tmp", "tmpfs", private, f"size={size},mode=1777")  # noqa: S108
    _mount("tmpfs", SHARED_MEMORY, "tmpfs", private | MS_NOEXEC, f"size={size},mode=1777")
    _mount(f"{SPOOL}/{request['run']}", INPUT, None, MS_BIND)
    _mount(None, INPUT, None, MS_BIND | MS_REMOUNT | MS_RDONLY | private)
    _unmount(SPOOL)
    for controller in os.listdir(CGROUPS):
        _unmount(f"{CGROUPS}/{controller}")
    pid = os.fork()  # the run's init: pid 1 of the new PID namespace
    if pid == 0:
        _be_init(request, control, stdin_read, output_write, status_write)
    for descriptor in (control, stdin_read, output_write, status_write, 1, 2):
        os.close(descriptor)
    os.waitpid(pid, 0)
    return 0


def _loopback_up() -> None:
    """The new network namespace's loopback, up (as bwrap's --unshare-net leaves it): a notebook
    may talk to itself over 127.0.0.1, and to nothing else."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as handle:
        request = struct.pack("16sH14s", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING, b"")
        fcntl.ioctl(handle, SIOCSIFFLAGS, request)


def _be_init(
    request: dict[str, object], control: int, stdin_read: int, output_write: int, status_write: int
) -> None:
    """Pid 1 of the run's namespace, as bwrap's init is: it forks the run, then drops to `nobody`
    (a uid the run cannot signal or trace), reaps orphans, reports the run's exit status and exits,
    which makes the kernel kill whatever else is left in the namespace."""
    code = SETUP_FAILED
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(status_write)
            _become_run(request, control, stdin_read, output_write)
        for descriptor in (control, stdin_read, output_write, 0, 1, 2):
            os.close(descriptor)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        while True:
            done, status = os.waitpid(-1, 0)
            if done == pid:
                break
        exit_code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with os.fdopen(status_write, "w") as report:
            report.write(json.dumps({"exit": exit_code}))
        code = 0
    finally:
        os._exit(code)


def _become_run(request: dict[str, object], control: int, stdin_read: int, output_write: int) -> None:
    code = SETUP_FAILED
    try:
        os.dup2(stdin_read, 0)
        os.dup2(output_write, 1)
        os.dup2(output_write, 2)
        os.dup2(control, RUN_CONTROL_FD)
        os.closerange(RUN_CONTROL_FD + 1, os.sysconf("SC_OPEN_MAX"))
        os.chdir(WORK)
        _entry().set_limits_and_drop_root({**request["limits"], "uid": int(request["uid"])})  # type: ignore[dict-item,call-overload]
        _load_seccomp_filter()
        os.umask(0o077)
        _fresh_process_state()
        sys.argv = [SCRIPT, "--input", INPUT, "--control-fd", str(RUN_CONTROL_FD), *request["arguments"]]  # type: ignore[misc]
    except BaseException:
        traceback.print_exc()
        os._exit(code)
    try:
        runpy.run_path(SCRIPT, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _entry() -> ModuleType:
    """The sandbox's entry script, which sets a fresh run's rlimits and uid: the same code here."""
    module = sys.modules.get("sandbox_entry")
    if module is None:
        spec = importlib.util.spec_from_file_location("sandbox_entry", ENTRY)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {ENTRY}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["sandbox_entry"] = module
    return module


def _load_seccomp_filter() -> None:
    import pyseccomp

    seccomp_filter = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        # A call this kernel's architecture does not have is skipped.
        with contextlib.suppress(OSError, ValueError):
            seccomp_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
    # clone with any namespace flag (a user namespace would give the run capabilities over a new
    # set of namespaces); clone3 passes its flags in memory a filter cannot read, so it answers
    # ENOSYS and the C library falls back to clone.
    for flag in (
        CLONE_NEWNS,
        CLONE_NEWCGROUP,
        CLONE_NEWUTS,
        CLONE_NEWIPC,
        CLONE_NEWUSER,
        CLONE_NEWPID,
        CLONE_NEWNET,
    ):
        seccomp_filter.add_rule(
            pyseccomp.ERRNO(errno.EPERM), "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag)
        )
    seccomp_filter.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    seccomp_filter.load()  # sets no_new_privs first


def _fresh_process_state() -> None:
    """What a fresh interpreter would have that a forked one shares with its siblings."""
    for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        # From the OS's entropy, as a fresh import seeds it.
        numpy_random.seed()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
