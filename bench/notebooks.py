"""P3/P4: grading notebooks in the sandbox, against plain nbclient with a fresh kernel, in one run.

    .venv/bin/python bench/notebooks.py [--repeats 5] [--burst 40]

Per notebook (hw5's solution, and an empty notebook whose grading time is all overhead), medians:
- autograde, fresh sandbox: the whole grade of q4 (stage 0 inputs and references, a new bubblewrap
  sandbox - the interpreter, `import torch` - the cells and the four checks, stage 2), as every
  notebook was graded before the fork server;
- autograde, fork server: the same, each run a child of the grading process's fork server
  (graders/sandbox/_zygote.py), isolated before the runner starts;
- in the sandbox: the run's own time from the go signal to its end (the cells and the checks'
  calls): the student's compute, which the rest of a grade is overhead on;
- nbclient: executing the same notebook with a fresh ipykernel (no sandbox, no checks at all).
Then bursts of N solution notebooks queued at once on 1 and on 2 grading processes (fork server),
and on 1 process with fresh sandboxes: wall time, time per notebook, the speed-up over fresh
sandboxes and the scaling from 1 to 2 processes. Last, memory by PSS (proportional set size, the
fair share of pages shared with other processes): the grading process, its fork server, and a run
while its cells sleep. Needs root, cgroups, bubblewrap and ipykernel.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graders import get_grader
from graders.notebook import NotebookGrader
from graders.sandbox import Zygotes
from tests.graders.notebooks import HW5, Q4, load_q4, notebook_text, solution_cells

EMPTY = notebook_text([])
MIB = 1024**2
_Q4: Q4 | None = None


def grader() -> NotebookGrader:
    found = get_grader("notebook")
    assert isinstance(found, NotebookGrader)
    return found


def use_fork_server(enabled: bool) -> None:
    notebooks = grader()
    if notebooks.zygotes is not None:
        notebooks.zygotes.close()
    notebooks.zygotes = Zygotes(preload=("numpy", "torch", "torch._dynamo")) if enabled else None


def grade_once(content: str) -> tuple[float, float, float]:
    """(seconds, seconds in the sandbox, fraction) of one whole grade."""
    global _Q4
    if _Q4 is None:
        _Q4 = load_q4()
    started = time.perf_counter()
    result = _Q4.grade(content)
    elapsed = time.perf_counter() - started
    return elapsed, float(result.details["sandbox"]["seconds"]), result.fraction


def nbclient_once(content: str) -> float:
    import nbclient
    import nbformat

    notebook = nbformat.reads(content, as_version=4)
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "train.npz").write_bytes((HW5 / "data" / "train.npz").read_bytes())
        started = time.perf_counter()
        nbclient.NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": work}}
        ).execute()
        return time.perf_counter() - started


def timed(content: str, repeats: int, fork_server: bool) -> tuple[float, float, float]:
    use_fork_server(fork_server)
    grade_once(EMPTY)  # the fork server starts on first use: not part of a grade
    runs = [grade_once(content) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[0][2]


def _start_worker(fork_server: bool) -> None:
    use_fork_server(fork_server)
    grade_once(EMPTY)  # load the material, import torch, start the fork server


def burst(processes: int, count: int, content: str, fork_server: bool) -> tuple[float, float]:
    """(wall seconds, median seconds in the sandbox) of `count` notebooks queued at once."""
    # spawn, not fork: a forked copy of a process that ran torch (OpenMP) can hang in torch.
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_start_worker, initargs=(fork_server,)) as pool:
        pool.map(time.sleep, [1.0] * processes, chunksize=1)  # every worker has started
        started = time.perf_counter()
        runs = pool.map(grade_once, [content] * count, chunksize=1)
        elapsed = time.perf_counter() - started
    assert all(fraction == 1.0 for _, _, fraction in runs), runs
    return elapsed, statistics.median(inside for _, inside, _ in runs)


def pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory(content: str) -> tuple[int, int, int]:
    """PSS of this grading process, of its fork server, and of one run (all its processes) while
    its cells sleep after the solution's cells ran."""
    use_fork_server(True)
    grade_once(content)
    zygotes = grader().zygotes
    assert zygotes is not None
    sleeping = notebook_text([*solution_cells(), "import time\ntime.sleep(4)"])
    worker = threading.Thread(target=grade_once, args=(sleeping,))
    worker.start()
    time.sleep(3.0)
    run = sum(pss_bytes(pid) for pid in zygotes.run_pids())
    server = sum(pss_bytes(pid) for pid in zygotes.server_pids())
    own = pss_bytes(os.getpid())
    worker.join()
    return own, server, run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--burst", type=int, default=40)
    arguments = parser.parse_args()
    if not Zygotes.possible():
        raise SystemExit("bench/notebooks.py needs root and writable cgroups (the fork server's isolation)")
    solution = notebook_text(solution_cells())
    grade_once(EMPTY)  # load the material and import torch here before timing
    rows = []
    for label, content in (("solution", solution), ("empty", EMPTY)):
        fresh, _, fraction = timed(content, arguments.repeats, fork_server=False)
        forked, inside, _ = timed(content, arguments.repeats, fork_server=True)
        baseline = statistics.median(nbclient_once(content) for _ in range(arguments.repeats))
        rows.append((label, fresh, forked, inside, baseline, fraction))
    own, server, run = memory(solution)
    use_fork_server(False)
    bursts = {
        "1 process, fork server": burst(1, arguments.burst, solution, fork_server=True),
        "2 processes, fork server": burst(2, arguments.burst, solution, fork_server=True),
        "1 process, fresh sandboxes": burst(1, arguments.burst, solution, fork_server=False),
    }
    print(f"cpus: {os.cpu_count()}, repeats: {arguments.repeats}, medians in seconds")
    print()
    print(
        "| notebook | autograde, fresh sandbox | autograde, fork server | in the sandbox (cells + checks) "
        "| overhead, fork server | nbclient, fresh kernel (cells only) | score |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, fresh, forked, inside, baseline, fraction in rows:
        print(
            f"| {label} | {fresh:.2f} | {forked:.2f} | {inside:.2f} | {forked - inside:.2f} "
            f"| {baseline:.2f} | {fraction * 10:g}/10 |"
        )
    print()
    print(
        f"| burst of {arguments.burst} solution notebooks | wall (s) | per notebook (s) "
        "| in the sandbox, median (s) | per notebook - in the sandbox (s) |"
    )
    print("|---|---|---|---|---|")
    for label, (wall, inside) in bursts.items():
        per_notebook = wall / arguments.burst
        # Per core: two processes share the two cores, so each notebook had one core for 2x wall/N.
        overhead = per_notebook * (2 if label.startswith("2") else 1) - inside
        print(f"| {label} | {wall:.1f} | {per_notebook:.2f} | {inside:.2f} | {overhead:.2f} |")
    one = bursts["1 process, fork server"][0]
    speed_up = bursts["1 process, fresh sandboxes"][0] / one
    scaling = one / bursts["2 processes, fork server"][0]
    print(f"| speed-up over fresh sandboxes, 1 process | {speed_up:.2f}x | | | |")
    print(f"| scaling, 1 → 2 processes (fork server) | {scaling:.2f}x | | | |")
    print()
    print("| memory by PSS | MiB |")
    print("|---|---|")
    print(f"| grading process (material, references, torch) | {own / MIB:.0f} |")
    print(f"| its fork server (bwrap, its init, the server with torch imported) | {server / MIB:.0f} |")
    print(f"| one run during its cells (its init and the runner) | {run / MIB:.0f} |")
    print(f"| grading process + fork server | {(own + server) / MIB:.0f} |")


if __name__ == "__main__":
    main()
