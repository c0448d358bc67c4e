"""Hostile notebooks: each is contained (an invalid verdict, a limit, or zero points with the attack
failing), nothing of the run survives it, and grading works normally afterwards.

Every notebook prints ESCAPED if its attack got through; the tests assert it never does. They run
with short limits, a few at a time, so the corpus takes well under a minute.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from graders import GradeResult, Verdict, get_grader
from graders.notebook import NotebookConfig, NotebookGrader
from graders.sandbox._cgroup import CGROUP_ROOT, PARENT_GROUP
from graders.sandbox._run import RUN_UID_HIGH, RUN_UID_LOW, bwrap_path
from tests.graders.notebooks import Q4, load_q4, notebook_text, solution_cells

REPOSITORY = Path(__file__).resolve().parents[2]
SECRET = f"hostile-test-secret-{uuid.uuid4().hex}"
HOST_MARKER = Path("/tmp") / f"autograde-pwned-{uuid.uuid4().hex}"

TRY = """
def attempt(what, action):
    try:
        result = action()
    except BaseException as error:
        print("CONTAINED", what, type(error).__name__)
        return None
    print("ESCAPED", what, repr(result)[:200])
    return result
"""


def attack(body: str) -> list[str]:
    return [TRY, textwrap.dedent(body)]


HOSTILE: dict[str, tuple[list[str], str]] = {
    # expectation "limit": the run is stopped (invalid); "zero": it completes, earns nothing.
    "fork bomb": (["import os\nwhile True:\n    os.fork()"], "zero_or_limit"),
    "shell fork bomb": (
        ["import subprocess, time\nsubprocess.Popen(['sh', '-c', 'f() { f | f & }; f'])\ntime.sleep(3)"],
        "zero_or_limit",
    ),
    "multiprocessing pool of 500": (
        ["import multiprocessing\npool = multiprocessing.Pool(500)"],
        "zero_or_limit",
    ),
    "memory bomb": (["blob = b'x' * (4 * 1024**3)"], "limit"),
    "memory bomb in a loop": (["hoard = []\nwhile True:\n    hoard.append(b'x' * 10**7)"], "limit"),
    "memory bomb in a check": (
        ["def rnn_forward(*args):\n    return b'x' * (4 * 1024**3)"],
        "zero",
    ),
    "one huge file": (
        ["with open('big', 'wb') as f:\n    while True:\n        f.write(b'0' * 2**20)"],
        "zero_or_limit",
    ),
    "many files": (
        ["i = 0\nwhile True:\n    open(f'f{i}', 'wb').write(b'0' * 2**20)\n    i += 1"],
        "zero_or_limit",
    ),
    "filling /tmp": (
        ["with open('/tmp/big', 'wb') as f:\n    while True:\n        f.write(b'0' * 2**20)"],
        "zero_or_limit",
    ),
    "infinite loop in a cell": (["while True:\n    pass"], "limit"),
    "sleeping cell": (["import time\ntime.sleep(10**6)"], "limit"),
    "spinning threads": (
        ["import threading\nfor _ in range(16):\n    threading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()"],
        "zero_or_limit",
    ),
    "infinite loop in every check": (
        [
            "import time\n"
            "def rnn_forward(*a):\n    while True: pass\n"
            "def attention(*a):\n    time.sleep(10**6)\n"
            "class M(__import__('torch').nn.Module):\n    def forward(self, x):\n        while True: pass\n"
            "model = M()"
        ],
        "zero",
    ),
    "network: DNS": (attack("import socket\nattempt('dns', lambda: socket.getaddrinfo('pypi.org', 443))"), "zero"),
    "network: host postgres and redis on loopback": (
        attack(
            "import socket\n"
            "for port in (5432, 6379):\n"
            "    attempt(port, lambda: socket.create_connection(('127.0.0.1', port), timeout=2))"
        ),
        "zero",
    ),
    "network: outside address": (
        attack("import socket\nattempt('out', lambda: socket.create_connection(('1.1.1.1', 53), timeout=2))"),
        "zero",
    ),
    "network: postgres unix socket": (
        attack(
            "import socket\n"
            "for path in ('/var/run/postgresql/.s.PGSQL.5432', '/tmp/.s.PGSQL.5432'):\n"
            "    s = socket.socket(socket.AF_UNIX)\n"
            "    attempt(path, lambda: s.connect(path))"
        ),
        "zero",
    ),
    "environment secrets": (
        attack(
            "import os, glob\n"
            f"needle = {SECRET[:20]!r} + {SECRET[20:]!r}\n"
            "blobs = [str(os.environ)]\n"
            "for path in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
            "    try:\n        blobs.append(open(path, 'rb').read().decode(errors='replace'))\n"
            "    except OSError:\n        pass\n"
            "attempt('secret', lambda: [b for b in blobs if needle in b or 'AUTOGRADE' in b or 'postgres' in b][0])"
        ),
        "zero",
    ),
    "the service's files": (
        attack(
            f"for path in ({str(REPOSITORY / 'service' / 'config.py')!r}, "
            f"{str(REPOSITORY / 'pyproject.toml')!r}, '/proc/1/root/etc/passwd', '/etc/passwd', '/root'):\n"
            "    attempt(path, lambda: open(path).read(10))"
        ),
        "zero",
    ),
    "the hidden test set and its seed": (
        attack(
            "import os, numpy as np\n"
            f"for path in ({str(REPOSITORY / 'reference' / 'hw5' / 'assignment.toml')!r}, "
            f"{str(REPOSITORY / 'reference' / 'hw5' / 'reference.py')!r}):\n"
            "    attempt(path, lambda: open(path).read(10))\n"
            "for name in os.listdir('/input'):\n"
            "    if name.endswith('-features.npz'):\n"
            "        attempt(name, lambda: np.load('/input/' + name)['y'])"
        ),
        "zero",
    ),
    "writing outside the work dir": (
        attack(
            "for path in ('/usr/x', '/opt/python/x', '/opt/site-packages/x', '/input/x', '/x', '/etc/x', "
            f"{str(REPOSITORY / 'pwned')!r}):\n"
            "    attempt(path, lambda: open(path, 'w').write('x'))"
        ),
        "zero",
    ),
    "becoming root": (
        attack("import os\nattempt('setuid', lambda: os.setuid(0))\nattempt('mount', lambda: os.system('mount -t tmpfs x /work') == 0 or 1 / 0)"),
        "zero",
    ),
    "signals to the sandbox's init": (
        attack("import os, signal\nattempt('init', lambda: os.kill(1, signal.SIGKILL))"),
        "zero",
    ),
    "signals to the grading process": (
        attack(f"import os, signal\nattempt('host', lambda: os.kill({os.getpid()}, signal.SIGKILL))"),
        "zero",
    ),
    "signals to every process it may": (["import os, signal\nos.kill(-1, signal.SIGKILL)"], "zero_or_limit"),
    "a daemon left running": (
        [
            "import os, subprocess, time\n"
            "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
            "if os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n    os._exit(0)"
        ],
        "zero",
    ),
    "printing 1 GB": (["import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n    sys.stdout.write(chunk)"], "zero"),
    "a __reduce__ payload returned": (
        [
            "import os\n"
            "class Evil:\n"
            f"    def __reduce__(self):\n        return (os.system, ('touch {HOST_MARKER}',))\n"
            "def rnn_forward(*a):\n    return Evil()\n"
            "def attention(*a):\n    import numpy as np\n    return np.array([Evil()], dtype=object)"
        ],
        "zero",
    ),
    "forged records on every descriptor, during the cells and the checks": (
        [
            "import glob, io, json, os, struct, threading, time, numpy as np\n"
            f"class Evil:\n    def __reduce__(self):\n        return (os.system, ('touch {HOST_MARKER}',))\n"
            "X = np.load('/input/model-features.npz')['X']\n"
            "logits = np.stack([X[:, 10:].sum(1), X[:, :10].sum(1)], axis=1)  # the hidden labels' rule\n"
            "def npy(array, pickles=False):\n"
            "    buffer = io.BytesIO()\n    np.save(buffer, array, allow_pickle=pickles)\n    return buffer.getvalue()\n"
            "def record(header, payload=b''):\n"
            "    header = json.dumps(dict(header, payload_bytes=len(payload))).encode()\n"
            "    return struct.pack('>I', len(header)) + header + payload\n"
            "blob = b''\n"
            "for name in ('rnn_forward#0', 'attention#0', 'bptt_grad_w_hh#0', 'model'):\n"
            "    payload = npy(logits) if name == 'model' else npy(np.array([Evil()], dtype=object), True)\n"
            "    blob += record({'event': 'check', 'name': name, 'status': 'ok'}, payload)\n"
            "    blob += record({'status': 'ok'}, payload)\n"
            "blob += record({'event': 'done'})\n"
            "for event in ({'event': 'cells_done'}, {'event': 'cells', 'count': 1}, {'event': 'done'}):\n"
            "    blob += b'\\n' + json.dumps(event).encode() + b'\\n'\n"
            "def spray():\n"
            "    for fd in range(1024):\n"
            "        try:\n            os.write(fd, blob)\n        except OSError:\n            pass\n"
            "    for path in glob.glob('/proc/self/fd/*'):\n"
            "        try:\n            with open(path, 'wb', buffering=0) as f:\n                f.write(blob)\n"
            "        except OSError:\n            pass\n"
            "def keep_spraying():\n    while True:\n        spray()\n        time.sleep(0.005)\n"
            "spray()\n"
            "threading.Thread(target=keep_spraying, daemon=True).start()"
        ],
        "zero",
    ),
    "garbage on the control socket": (
        ["import os, sys\nos.write(int(sys.argv[sys.argv.index('--control-fd') + 1]), b'\\xff' * 1000)"],
        "zero_or_limit",
    ),
    "a cell that stops the runner's clocks and blocks signals": (
        [
            "import signal, threading, time\n"
            "for thread in threading.enumerate():\n"
            "    if isinstance(thread, threading.Timer):\n        thread.cancel()\n"
            "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP})\n"
            "time.sleep(8)",
            *solution_cells(),
        ],
        "limit",
    ),
    "results of the wrong type and size": (
        [
            "import torch\n"
            "def rnn_forward(*a):\n    return 'a string'\n"
            "def attention(*a):\n    return torch.zeros(10**7)\n"
            "def bptt_grad_w_hh(*a):\n    return [1.0, 2.0]\n"
            "model = 3"
        ],
        "zero",
    ),
    "a model with the wrong output": (
        ["import torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        return x\nmodel = M()"],
        "zero",
    ),
    "a segfault": (["import ctypes\nctypes.string_at(0)"], "limit"),
    "exiting the process": (["import os\nos._exit(3)"], "limit"),
    "sabotaged imports": (
        ["import builtins, sys\nfor name in list(sys.modules):\n    if name.startswith(('numpy', 'torch')):\n"
         "        sys.modules[name] = None\nbuiltins.__import__ = None"],
        "zero_or_limit",
    ),
}  # fmt: skip


def hostile_config(config: NotebookConfig) -> NotebookConfig:
    return config.model_copy(
        update={
            "notebook_seconds": 5.0,
            "memory_mb": 512,
            "max_processes": 32,
            "work_dir_mb": 32,
            "functions": [c.model_copy(update={"seconds": 3.0, "trials": 1}) for c in config.functions],
            "classifiers": [c.model_copy(update={"seconds": 3.0, "size": 200}) for c in config.classifiers],
        }
    )


def sandbox_processes(uids: set[int]) -> list[int]:
    """Processes still running under one of these runs' uids (other autograde instances on the
    machine, a demo left running, have sandbox uids of their own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            uid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:"))
            if uid in uids:
                found.append(int(entry.name))
    return found


pytestmark = pytest.mark.skipif(bwrap_path() is None, reason="needs bubblewrap (make system-deps)")


@pytest.fixture(scope="module")
def q4() -> Q4:
    return load_q4()


@pytest.fixture(scope="module")
def graded(q4: Q4) -> Iterator[dict[str, GradeResult]]:
    """Every hostile notebook graded, three at a time, with a secret in this process's environment."""
    os.environ["AUTOGRADE_SECRET_KEY"] = SECRET
    try:
        config = hostile_config(q4.config)
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {
                name: pool.submit(q4.grade, notebook_text(cells), config)
                for name, (cells, _) in HOSTILE.items()
            }
            yield {name: future.result() for name, future in futures.items()}
    finally:
        del os.environ["AUTOGRADE_SECRET_KEY"]


def test_the_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_notebook_is_contained(graded: dict[str, GradeResult], name: str) -> None:
    result = graded[name]
    expectation = HOSTILE[name][1]
    sandbox: dict[str, Any] = result.details.get("sandbox", {})  # type: ignore[assignment]
    output = str(sandbox.get("output_tail", ""))
    assert result.fraction == 0.0, result.feedback
    assert "ESCAPED" not in output, output
    assert result.verdict is not Verdict.ERROR, result.details
    if expectation == "limit":
        assert result.verdict is Verdict.INVALID, result.feedback
        assert "stopped" in result.feedback or "limit" in result.feedback
    elif expectation == "zero":
        assert result.verdict is Verdict.INCORRECT, result.feedback
        assert len(result.feedback.splitlines()) >= 4  # every check named, with why it failed
    else:
        assert result.verdict in (Verdict.INVALID, Verdict.INCORRECT), result.feedback
    if "CONTAINED" in TRY and expectation == "zero" and name.startswith(("network", "environment", "the ")):
        assert "CONTAINED" in output  # the attack ran and failed


def test_specific_outcomes(graded: dict[str, GradeResult]) -> None:
    assert graded["memory bomb"].details["sandbox"]["limit"] == "memory"  # type: ignore[index]
    assert "the time limit of 5 s for the cells" in graded["infinite loop in a cell"].feedback
    assert "while cell 1 was running" in graded["infinite loop in a cell"].feedback
    every_check = graded["infinite loop in every check"].details["checks"]
    assert every_check["rnn_forward"]["status"] == "timeout"  # type: ignore[index]
    assert every_check["model"]["status"] == "timeout"  # type: ignore[index]
    assert "did not return within 3 s" in graded["infinite loop in every check"].feedback
    printed = graded["printing 1 GB"].details["sandbox"]
    assert printed["output_bytes"] >= 2**30  # type: ignore[index,operator]
    assert len(printed["output_tail"]) <= 2000  # type: ignore[index,arg-type]
    assert "returned a Evil, not a tensor" in graded["a __reduce__ payload returned"].feedback
    forged = graded["forged records on every descriptor, during the cells and the checks"].details["checks"]
    assert {name: check["points"] for name, check in forged.items()} == dict.fromkeys(forged, 0.0)  # type: ignore[index,union-attr]
    assert forged["model"]["status"] in ("error", "invalid")  # type: ignore[index,call-overload]
    clocks = graded["a cell that stops the runner's clocks and blocks signals"]
    assert "the time limit of 5 s for the cells" in clocks.feedback
    assert 5 <= clocks.details["sandbox"]["cells_seconds"] < 5 + 1  # type: ignore[index,operator]
    wrong = graded["results of the wrong type and size"].feedback
    assert "returned a str" in wrong
    assert "more than the" in wrong
    assert "returned a list" in wrong
    assert "not a torch.nn.Module" in wrong
    assert "not (batch, 2)" in graded["a model with the wrong output"].feedback


def test_nothing_of_the_runs_survives(graded: dict[str, GradeResult]) -> None:
    grader = get_grader("notebook")
    assert isinstance(grader, NotebookGrader)
    assert grader.zygotes is not None
    grader.zygotes.close()  # the fork servers are the only processes left, by design
    assert not HOST_MARKER.exists()
    assert not (REPOSITORY / "pwned").exists()
    uids = {result.details["sandbox"]["uid"] for result in graded.values() if "sandbox" in result.details}  # type: ignore[index]
    assert len(uids) > len(HOSTILE) // 2  # a uid per run (drawn at random: two runs may share one)
    assert all(isinstance(uid, int) and RUN_UID_LOW <= uid < RUN_UID_HIGH for uid in uids)
    assert sandbox_processes(uids) == []  # type: ignore[arg-type]
    # Only this test's runs: other autograde instances on the host may be grading right now.
    names = {result.details["sandbox"]["cgroup"] for result in graded.values() if "sandbox" in result.details}  # type: ignore[index]
    if (CGROUP_ROOT / "pids" / PARENT_GROUP).exists():
        assert names - {None}, "the runs had cgroups, but their details do not name them"
    for controller in ("pids", "memory"):
        groups = CGROUP_ROOT / controller / PARENT_GROUP
        for name in names - {None}:
            # A run's groups (below its fork server's, or directly below the parent for a fresh
            # sandbox) are removed when it ends; what is left must at least be empty.
            for procs in groups.glob(f"**/{name}/cgroup.procs"):
                assert procs.read_text() == "", f"{controller}/{name} still holds processes"


def test_grading_works_normally_afterwards(graded: dict[str, GradeResult], q4: Q4) -> None:
    result = q4.grade(notebook_text(solution_cells()))
    assert result.verdict is Verdict.CORRECT, result.feedback
