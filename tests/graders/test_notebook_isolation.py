"""Isolation between submissions, tested through the public grading path (issue 15).

A hostile notebook tries to leave something for the NEXT submission (a process that survives its
run, a marked file in every writable place, changed modules and import paths, SysV and POSIX
shared memory, listening sockets, writes into shared memory mappings) and to reach every other
process it can see (signals, ptrace, /proc/<pid>/mem). A probe notebook graded next, by the same
grader instance, looks for each trace: its one check returns how many it found, against a
reference returning 0, so it is graded correct only when it found nothing (each trace is printed,
so a failure says what leaked). Then two notebooks graded at the same time: one sleeps in its cell
while the other looks for it and attacks whatever it finds.

Every trace is marked with LEFTOVER (in its name or its content) so that the probe can tell it
from what the sandbox itself holds, however the sandbox is built. These hold for a fresh sandbox
per run (today) and must keep holding for any warm-start design (a fork server included).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from graders import GradeResult, GradingContext, Verdict, get_grader
from graders.notebook import NotebookConfig, NotebookGrader
from graders.sandbox import Zygotes, bwrap_path
from tests.graders.notebooks import answer_for, notebook_text
from tests.graders.test_notebook_hostile import sandbox_processes

LEFTOVER = "autograde-leftover"
VICTIM = "autograde-victim"
ATTACKER = "autograde-attacker"
# Until when (seconds after the test began) the victim sleeps in its cell and the attacker looks
# for it: wall-clock deadlines, so that the two overlap however long either took to start (one may
# start a sandbox cold on a busy machine while the other takes a warm one). At least a few seconds.
VICTIM_UNTIL_SECONDS = 20
ATTACKER_UNTIL_SECONDS = 18
AT_LEAST_SECONDS = 2

# Helpers every notebook here starts with: which processes a run may see of itself, and the
# attempts on any other one (each success is an escape).
COMMON = f"""
import ctypes, glob, os, signal, socket, sys, time

LEFTOVER = {LEFTOVER!r}
LEFTOVER_ID = LEFTOVER.replace("-", "_")
IPC_KEY = 0x41475244
PORTS = (47001, 47002)
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
LIBC.ptrace.restype = ctypes.c_long
PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SEIZE = 16, 17, 0x4206


def parent_of(pid):
    try:
        with open(f"/proc/{{pid}}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def visible_pids():
    return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())


def ancestors():
    found, pid = [], parent_of(os.getpid())
    while pid > 0 and pid not in found:
        found.append(pid)
        pid = parent_of(pid)
    return found


def descendants():
    parents = {{pid: parent_of(pid) for pid in visible_pids()}}
    found, frontier = set(), [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def other_processes():
    # What a run may see of itself: its own process, its ancestors in its pid namespace (the
    # sandbox's init) and its children. Anything else belongs to someone else.
    own = {{os.getpid(), *ancestors(), *descendants()}}
    return [pid for pid in visible_pids() if pid not in own]


def describe(pid):
    try:
        with open(f"/proc/{{pid}}/cmdline", "rb") as cmdline:
            command = cmdline.read(200).replace(b"\\0", b" ").decode(errors="replace").strip()
    except OSError as error:
        command = type(error).__name__
    return f"pid {{pid}} ({{command[:100]}})"


def walk():
    # Every directory but /proc and /sys, with the names in it (symbolic links are not followed).
    for root, dirs, files in os.walk("/"):
        if root in ("/proc", "/sys"):
            dirs[:] = []
            continue
        yield root, dirs + files


def read_memory(pid):
    with open(f"/proc/{{pid}}/maps") as maps:
        start = int(maps.readline().split("-")[0], 16)
    with open(f"/proc/{{pid}}/mem", "rb") as memory:
        memory.seek(start)
        return memory.read(16)


def reach(pid, kill=True):
    # Everything this run tries on another process; what succeeds is named.
    reached = []

    def attempt(what, action):
        try:
            action()
        except Exception:
            return
        reached.append(f"{{what}} {{describe(pid)}}")

    def ptrace(request):
        if LIBC.ptrace(request, pid, None, None) != 0:
            raise OSError(ctypes.get_errno(), "ptrace")
        LIBC.ptrace(PTRACE_DETACH, pid, None, None)

    def write_into(path):
        with open(path, "w") as file:
            file.write(LEFTOVER)

    attempt("read the environment of", lambda: open(f"/proc/{{pid}}/environ", "rb").read())
    attempt("read the memory of", lambda: read_memory(pid))
    attempt("opened for writing the memory of", lambda: open(f"/proc/{{pid}}/mem", "r+b").close())
    attempt("listed the work directory of", lambda: os.listdir(f"/proc/{{pid}}/root/work"))
    attempt("listed the working directory of", lambda: os.listdir(f"/proc/{{pid}}/cwd"))
    attempt("wrote into the /tmp of", lambda: write_into(f"/proc/{{pid}}/root/tmp/{ATTACKER}"))
    attempt("ptrace-attached to", lambda: ptrace(PTRACE_ATTACH))
    attempt("ptrace-seized", lambda: ptrace(PTRACE_SEIZE))
    if kill:
        attempt("stopped", lambda: os.kill(pid, signal.SIGSTOP))
        attempt("killed", lambda: os.kill(pid, signal.SIGKILL))
    return reached
"""

# What the probe (and each of the concurrent runs) looks for: every kind of trace the hostile
# notebook leaves, by its mark, and the generic ones (another process, a SysV IPC object, a tracer).
FIND = """
import builtins, numpy, torch


def connects(family, address):
    with socket.socket(family) as client:
        client.settimeout(0.5)
        client.connect(address)


def findings(marks):
    found = []
    directories = 0
    for root, names in walk():
        directories += 1
        found += [f"a file {os.path.join(root, name)}" for name in names if any(m in name for m in marks)]
        if not os.access(root, os.W_OK):
            continue
        for name in names:  # contents, where a file may be left under any name
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue  # a FIFO would block the read
            try:
                with open(path, "rb") as file:
                    if any(m.encode() in file.read(4096) for m in marks):
                        found.append(f"a file holding a mark: {path}")
            except OSError:
                pass
    print("LOOKED in", directories, "directories", flush=True)
    for entry in sys.path:  # what a later import or a site hook would pick up
        try:
            names = os.listdir(entry)
        except OSError:
            continue
        for name in names:
            if name.endswith((".py", ".pth")):
                try:
                    with open(os.path.join(entry, name), "rb") as file:
                        if any(m.encode() in file.read(65536) for m in marks):
                            found.append(f"a module holding a mark: {os.path.join(entry, name)}")
                except OSError:
                    pass
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as table:
                rows = [row.split()[:2] for row in table.read().splitlines()[1:] if row.strip()]
        except OSError:
            rows = []
        found += [f"a SysV {kind} object (key, id) {row}" for row in rows]
    if LIBC.shmget(IPC_KEY, 0, 0) >= 0:
        found.append(f"a SysV shared-memory segment of key {IPC_KEY:#x}")
    with open("/proc/net/unix") as table:
        found += [f"a unix socket {line.split()[-1]}" for line in table if any(m in line for m in marks)]
    for mark in marks:
        for name in (mark, mark + "-daemon"):
            try:
                connects(socket.AF_UNIX, "\\0" + name)
                found.append(f"an abstract socket @{name} accepts connections")
            except OSError:
                pass
    for port in PORTS:
        try:
            connects(socket.AF_INET, ("127.0.0.1", port))
            found.append(f"a TCP port {port} accepts connections")
        except OSError:
            pass
    with open("/proc/self/maps") as maps:  # shared mappings another process may have written into
        for line in maps:
            fields = line.split()
            if fields[1][0] == "r" and fields[1][3] == "s":
                start, end = (int(bound, 16) for bound in fields[0].split("-"))
                try:
                    data = ctypes.string_at(start, min(end - start, 1 << 20))
                except Exception:
                    continue
                if any(m.encode() in data for m in marks):
                    found.append(f"a shared mapping holding a mark: {line.strip()}")
    ids = [m.replace("-", "_") for m in marks]
    for module in (builtins, numpy, torch, sys, os):
        found += [f"{module.__name__}.{i} was set" for i in ids if hasattr(module, i)]
    found += [f"sys.modules holds {i}" for i in ids if i in sys.modules]
    found += [f"sys.path holds {entry}" for entry in sys.path if any(m in entry for m in marks)]
    found += [f"sys.meta_path holds {finder!r}" for finder in sys.meta_path
              if any(hasattr(finder, i) for i in ids)]
    found += [f"the environment holds {key}" for key, value in os.environ.items()
              if any(m in key + value or m.upper().replace("-", "_") in key for m in marks)]
    if numpy.sum([1, 2]) != 3 or not numpy.sum.__module__.startswith("numpy"):
        found.append("numpy.sum was replaced")
    if float(torch.zeros(2).sum()) != 0 or type(torch.zeros).__name__ != "builtin_function_or_method":
        found.append("torch.zeros was replaced")
    if abs(-1) != 1 or type(abs).__name__ != "builtin_function_or_method":
        found.append("builtins.abs was replaced")
    for name, module in (("numpy", numpy), ("torch", torch)):
        if not module.__file__.endswith(os.path.join(name, "__init__.py")):
            found.append(f"{name} was imported from {module.__file__}")
    for line in open("/proc/self/status"):
        if line.startswith("TracerPid:") and line.split()[1] != "0":
            found.append(f"this run is being traced by pid {line.split()[1]}")
    # Last, as the output's tail is what comes back: processes are the rarest and gravest trace.
    found += [f"another run's process is visible: {describe(pid)}" for pid in other_processes()]
    return found


def report(found):
    for finding in dict.fromkeys(found):
        print("TRACE", finding[:150], flush=True)
    return len(dict.fromkeys(found))
"""

# --- The hostile notebook: reach every process it sees, then leave a trace everywhere it can.

HOSTILE_REACH = """
ESCAPES = []
targets = [pid for pid in visible_pids() if pid != os.getpid()]
for pid in targets:
    # Its own ancestors are signalled last: a signal that got through could end this run.
    ESCAPES += reach(pid, kill=pid not in ancestors())
for escape in ESCAPES:
    print("ESCAPED", escape, flush=True)
"""

HOSTILE_FILES = """
LEFT = set()
marked = f"{LEFTOVER}\\n".encode()
places = {root for root, _ in walk()}
places |= {"/tmp", "/work", "/dev/shm", os.path.expanduser("~"), "/input", "/var/tmp", "/run", *sys.path}
WRITABLE = []
for place in sorted(places):
    try:
        descriptor = os.open(os.path.join(place, f".{LEFTOVER}"), os.O_WRONLY | os.O_CREAT, 0o666)
        os.write(descriptor, marked)
        os.close(descriptor)
        WRITABLE.append(place)
    except OSError:
        pass
for place in WRITABLE:
    LEFT.add(f"a file in {place}")
    try:
        os.mkfifo(os.path.join(place, f"{LEFTOVER}-fifo"), 0o666)
        os.symlink("/", os.path.join(place, f"{LEFTOVER}-link"))
    except OSError:
        pass
# Modules a later import (or a site hook) would pick up, wherever one may be written.
hook = f"# {LEFTOVER}\\nimport builtins\\nbuiltins.{LEFTOVER_ID} = True\\n"
for place in [*WRITABLE, *sys.path]:
    names = ("sitecustomize.py", "usercustomize.py", f"{LEFTOVER_ID}.py", "numpy.py", "torch.py")
    modules = dict.fromkeys(names, hook)
    modules[f"{LEFTOVER}.pth"] = f"import {LEFTOVER_ID}  # {LEFTOVER}\\n"
    for name, text in modules.items():
        try:
            with open(os.path.join(place, name), "w") as module:
                module.write(text)
            LEFT.add(f"a module {name} in {place}")
        except OSError:
            pass
"""

HOSTILE_IPC = """
IPC_CREAT = 0o1000
LIBC.shmat.restype = ctypes.c_void_p
LIBC.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
for key in (IPC_KEY, 0):  # a known key, and IPC_PRIVATE
    segment = LIBC.shmget(key, 4096, IPC_CREAT | 0o666)
    if segment >= 0:
        address = LIBC.shmat(segment, None, 0)
        if address not in (None, 2**64 - 1):
            ctypes.memmove(address, LEFTOVER.encode(), len(LEFTOVER))
        LEFT.add("a SysV shared-memory segment")
if LIBC.semget(IPC_KEY, 1, IPC_CREAT | 0o666) >= 0:
    LEFT.add("a SysV semaphore set")
if LIBC.msgget(IPC_KEY, IPC_CREAT | 0o666) >= 0:
    LEFT.add("a SysV message queue")
try:
    import _posixshmem
    os.write(_posixshmem.shm_open(f"/{LEFTOVER}-posix", os.O_CREAT | os.O_RDWR, 0o666), LEFTOVER.encode())
    LEFT.add("a POSIX shared-memory object")
except OSError:
    pass
HELD = []
try:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind("\\0" + LEFTOVER)
    listener.listen()
    HELD.append(listener)
    LEFT.add("an abstract unix socket")
except OSError:
    pass
try:
    listener = socket.socket(socket.AF_INET)
    listener.bind(("127.0.0.1", PORTS[0]))
    listener.listen()
    HELD.append(listener)
    LEFT.add("a TCP listener")
except OSError:
    pass
# Shared writable mappings (a fork server's, were it to have any): a child writes the mark into
# each, so that a crash on one costs only the child.
shared = [line.split()[0] for line in open("/proc/self/maps") if line.split()[1][1::2] == "ws"]
child = os.fork()
if child == 0:
    for bounds in shared:
        try:
            ctypes.memmove(int(bounds.split("-")[0], 16), LEFTOVER.encode(), len(LEFTOVER))
        except Exception:
            pass
    os._exit(0)
os.waitpid(child, 0)
"""

HOSTILE_MODULES = """
import builtins, types, numpy, torch

for module in (builtins, numpy, torch, sys, os):
    setattr(module, LEFTOVER_ID, True)
numpy.sum = lambda *args, **kwargs: 42
real_zeros = torch.zeros
torch.zeros = lambda *args, **kwargs: real_zeros(*args, **kwargs) + 1
builtins.abs = lambda value: 42
sys.modules[LEFTOVER_ID] = types.ModuleType(LEFTOVER_ID)
sys.path.insert(0, f"/work/{LEFTOVER}")


class Finder:
    def find_spec(self, *args, **kwargs):
        return None


setattr(Finder, LEFTOVER_ID, True)
sys.meta_path.insert(0, Finder())
os.environ["AUTOGRADE_LEFTOVER"] = LEFTOVER
LEFT.add("changed modules")
"""

# Signals to every process it may signal (-1: its result says nothing, as Linux answers 0 when any
# process but init and the caller exists, even if each refused) and to its own ancestors (the
# sandbox's init, or whatever started this run), before its daemons start: each may end this run.
HOSTILE_SIGNALS = """
for number in (signal.SIGSTOP, signal.SIGKILL):
    try:
        os.kill(-1, number)
    except OSError:
        pass
for pid in ancestors():
    for number in (signal.SIGSTOP, signal.SIGKILL):
        try:
            os.kill(pid, number)
            print("ESCAPED signal", number, "to", describe(pid), flush=True)
        except OSError:
            pass
"""

HOSTILE_DAEMONS = """
def keep_marking():
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)
    held = socket.socket(socket.AF_UNIX)
    held.bind("\\0" + LEFTOVER + "-daemon")
    held.listen()
    try:
        port = socket.socket(socket.AF_INET)
        port.bind(("127.0.0.1", PORTS[1]))
        port.listen()
    except OSError:
        pass
    while True:
        for place in WRITABLE:
            try:
                with open(os.path.join(place, f"{LEFTOVER}-daemon"), "a") as file:
                    file.write(f"{time.time()}\\n")
            except OSError:
                pass
        time.sleep(0.1)


child = os.fork()
if child == 0:  # a double fork and a session of its own: the daemon's parent is gone at once
    try:
        os.setsid()
        if os.fork() == 0:
            keep_marking()
    finally:
        os._exit(0)
os.waitpid(child, 0)
import subprocess
subprocess.Popen(["/bin/sh", "-c", f"while :; do date >> /tmp/{LEFTOVER}-shell; sleep 0.1; done"],
                 start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
time.sleep(0.5)
if os.path.exists(f"/work/{LEFTOVER}-daemon") or os.path.exists(f"/tmp/{LEFTOVER}-daemon"):
    LEFT.add("a daemon")
print("LEFT", "; ".join(sorted(trace for trace in LEFT if not trace.startswith("a module "))), flush=True)
print("LEFT", sum(trace.startswith("a module ") for trace in LEFT), "modules", flush=True)
"""

# The probe's search run on the hostile run itself: it must see every kind of trace (so that a
# probe finding nothing means there was nothing to find, not that it was looking elsewhere).
HOSTILE_SELF_CHECK = """
seen = findings([LEFTOVER])
print("SELF SAW", len(seen), "MISSED", [kind for kind in SELF_FOUND if not any(kind in s for s in seen)])
print("HOSTILE DONE", flush=True)
"""


# What the probe's search finds in the hostile run itself, one of each kind of trace.
SELF_FOUND = [
    "another run's process is visible", "a file /work/", "a file /tmp/", "a file holding a mark: /work/",
    "a SysV shm object", "a SysV sem object", "a SysV msg object", "a SysV shared-memory segment of key",
    "a unix socket @autograde-leftover", "an abstract socket @autograde-leftover accepts",
    "an abstract socket @autograde-leftover-daemon accepts", "a TCP port 47001", "a TCP port 47002",
    "a shared mapping holding a mark", "builtins.autograde_leftover was set",
    "numpy.autograde_leftover was set", "torch.autograde_leftover was set", "sys.modules holds",
    "sys.path holds", "sys.meta_path holds", "the environment holds", "numpy.sum was replaced",
    "torch.zeros was replaced", "builtins.abs was replaced",
]  # fmt: skip

HOSTILE = [COMMON, FIND, f"SELF_FOUND = {SELF_FOUND!r}", HOSTILE_REACH, HOSTILE_FILES, HOSTILE_IPC,
           HOSTILE_MODULES, HOSTILE_SIGNALS, HOSTILE_DAEMONS, HOSTILE_SELF_CHECK]  # fmt: skip

# --- The probe: the next submission, looking for every trace.

PROBE = [
    COMMON,
    FIND,
    f"""
FOUND = report(findings([LEFTOVER, {ATTACKER!r}]))
print("PROBE DONE", flush=True)


def traces(x):
    return torch.tensor(float(FOUND))
""",
]

# --- Two runs at the same time: a victim asleep in its cell, and an attacker looking for it.


def victim_cells(until: float) -> list[str]:
    return [
        COMMON,
        FIND,
        f"""
SECRET = {VICTIM!r} + "-" + os.urandom(8).hex()
KEPT = {{}}
for place in ("/work", "/tmp"):
    path = os.path.join(place, SECRET)
    with open(path, "w") as file:
        file.write(SECRET)
    KEPT[path] = SECRET
os.environ["AUTOGRADE_VICTIM"] = SECRET
IN_MEMORY = (SECRET * 100).encode()
held = socket.socket(socket.AF_UNIX)
held.bind("\\0" + SECRET)
held.listen()
print("VICTIM FROM", time.time(), flush=True)
time.sleep(max({until} - time.time(), {AT_LEAST_SECONDS}))
""",
        f"""
print("VICTIM UNTIL", time.time(), flush=True)
found = findings([LEFTOVER, {ATTACKER!r}])
for path, text in KEPT.items():
    try:
        if open(path).read() != text:
            found.append(f"{{path}} was changed")
    except OSError as error:
        found.append(f"{{path}} is gone: {{error}}")
FOUND = report(found)


def traces(x):
    return torch.tensor(float(FOUND))
""",
    ]


def attacker_cells(until: float) -> list[str]:
    return [
        COMMON,
        FIND,
        f"""
ATTACKER = {ATTACKER!r}
VICTIM = {VICTIM!r}
found = []
began = time.time()
rounds = 0
while time.time() < max({until}, began + {AT_LEAST_SECONDS}):
    for pid in other_processes():
        found.append(f"sees {{describe(pid)}}")
        found += reach(pid)
    # Other runs' work directories and the grading process's scratch directories, by any path.
    for pattern in ("/proc/*/root/work/*", "/proc/*/root/tmp/*", "/proc/*/cwd/*", "/tmp/autograde-run-*",
                    "/proc/*/root/tmp/autograde-run-*"):
        own = {{os.getpid(), *ancestors(), *descendants()}}
        found += [f"found {{path}}" for path in glob.glob(pattern)
                  if not path.startswith("/proc/")
                  or path.split("/")[2].isdigit() and int(path.split("/")[2]) not in own]
    with open("/proc/net/unix") as table:
        found += [f"a unix socket {{line.split()[-1]}}" for line in table if VICTIM in line]
    if rounds % 40 == 0:  # the whole tree now and then (it takes most of a second)
        found += [f"a file {{os.path.join(root, name)}}" for root, names in walk() for name in names
                  if VICTIM in name]
    rounds += 1
    time.sleep(0.1)
print("ATTACKER FROM", began, "UNTIL", time.time(), "ROUNDS", rounds, flush=True)
found += findings([VICTIM])
FOUND = report(found)


def traces(x):
    return torch.tensor(float(FOUND))
""",
    ]


def no_traces(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(())


def one_input(rng: np.random.Generator) -> dict[str, Any]:
    return {"x": rng.standard_normal(1)}


CONTEXT = GradingContext(variant_seed=15, reference={"no_traces": no_traces, "one_input": one_input})
CONFIG: dict[str, Any] = {
    "notebook_seconds": 40,
    "memory_mb": 1024,
    "max_processes": 32,
    "work_dir_mb": 32,
    "functions": [
        {"name": "traces", "points": 1, "reference": "no_traces", "inputs": "one_input", "trials": 1,
         "seconds": 5},
    ],
}  # fmt: skip

pytestmark = pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")


@pytest.fixture(scope="module")
def config() -> NotebookConfig:
    parsed = get_grader("notebook").parse_config(CONFIG)
    assert isinstance(parsed, NotebookConfig)
    return parsed


@pytest.fixture(scope="module")
def grader() -> Iterator[NotebookGrader]:
    """ONE grader for every run here: whatever it keeps between runs (its fork server, which
    forks every run here) is what a submission could leave something in for the next."""
    grader = NotebookGrader()
    yield grader
    if grader.zygotes is not None:
        grader.zygotes.close()


def grade(grader: NotebookGrader, config: NotebookConfig, cells: list[str]) -> GradeResult:
    return grader.grade_raw_answer(config, answer_for(notebook_text(cells)), CONTEXT)


def output_of(result: GradeResult) -> str:
    sandbox: dict[str, Any] = result.details.get("sandbox", {})  # type: ignore[assignment]
    return str(sandbox.get("output_tail", ""))


def assert_found_nothing(result: GradeResult, who: str) -> None:
    output = output_of(result)
    traces = [line for line in output.splitlines() if line.startswith("TRACE")]
    assert traces == [], f"the {who} found traces:\n" + "\n".join(traces)
    assert result.verdict is Verdict.CORRECT, f"{result.feedback}\n{output}"
    assert result.fraction == 1.0


def test_a_submission_finds_nothing_the_previous_one_left(
    grader: NotebookGrader, config: NotebookConfig
) -> None:
    hostile = grade(grader, config, HOSTILE)
    probe = grade(grader, config, PROBE)
    if Zygotes.possible():  # root and cgroups, as on CI: both forked from one and the same server
        server = hostile.details["sandbox"]["server"]  # type: ignore[index]
        assert server is not None
        assert probe.details["sandbox"]["server"] == server  # type: ignore[index]

    left = output_of(hostile)
    assert "HOSTILE DONE" in left, left  # every attempt ran
    assert "ESCAPED" not in left, left
    assert hostile.verdict is Verdict.INCORRECT, hostile.feedback  # it defines no `traces`
    # The traces it left in its own run (each of which the probe looks for).
    traces = next(line for line in left.splitlines() if line.startswith("LEFT a"))
    for trace in ("a file in /work", "a file in /tmp", "a SysV shared-memory segment",
                  "a SysV semaphore set", "a SysV message queue", "an abstract unix socket",
                  "changed modules", "a daemon"):  # fmt: skip
        assert trace in traces, left

    assert "MISSED []" in left, left  # the probe's search sees each kind of trace in the hostile run

    assert "PROBE DONE" in output_of(probe), output_of(probe)
    looked = re.search(r"LOOKED in (\d+) directories", output_of(probe))
    assert looked is not None
    assert int(looked[1]) > 1000  # the whole tree, the interpreter's and torch's included
    assert_found_nothing(probe, "probe")

    # Nothing of the hostile run is left on this machine either.
    uid = hostile.details.get("sandbox", {}).get("uid")  # type: ignore[union-attr]
    if isinstance(uid, int):
        assert sandbox_processes({uid}) == []
    assert list(Path("/tmp").glob(f"*{LEFTOVER}*")) == []


def test_a_submission_cannot_find_or_disturb_one_graded_beside_it(
    grader: NotebookGrader, config: NotebookConfig
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        began = time.time()
        victim_run = pool.submit(grade, grader, config, victim_cells(began + VICTIM_UNTIL_SECONDS))
        attacker_run = pool.submit(grade, grader, config, attacker_cells(began + ATTACKER_UNTIL_SECONDS))
        victim, attacker = victim_run.result(), attacker_run.result()

    slept = re.search(r"VICTIM FROM ([\d.]+).*VICTIM UNTIL ([\d.]+)", output_of(victim), re.DOTALL)
    attacked = re.search(r"ATTACKER FROM ([\d.]+) UNTIL ([\d.]+) ROUNDS (\d+)", output_of(attacker))
    assert slept is not None, output_of(victim)
    assert attacked is not None, output_of(attacker)
    # The attack ran while the victim was asleep in its cell (else this test shows nothing).
    assert max(float(slept[1]), float(attacked[1])) < min(float(slept[2]), float(attacked[2])), (
        "the two runs did not overlap"
    )
    assert_found_nothing(attacker, "attacker")
    assert_found_nothing(victim, "victim")  # and it kept its full score
