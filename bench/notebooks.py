"""P3/P4: grading notebooks in the sandbox, against plain nbclient with a fresh kernel, in one run.

    .venv/bin/python bench/notebooks.py [--repeats 5] [--burst 20]

Per notebook (hw5's solution, and an empty notebook whose grading time is all overhead):
- autograde, cold: the whole grade of q4 (stage 0 inputs and references, a sandbox started for it
  - bwrap, the interpreter, `import torch` - the cells and the four checks, stage 2) with warm
  start switched off;
- autograde, warm: the same with the spare sandbox ready (the grader starts the next run's sandbox
  after each run; runs here are 3 s apart, as on a worker that is not saturated);
- nbclient: executing the same notebook with a fresh ipykernel (no sandbox, no checks at all).
Then a burst of N solution notebooks graded by 1 and by 2 worker processes (warm start on, as in
the service): wall time and the scaling ratio. Prints medians; needs bubblewrap and ipykernel.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graders import get_grader
from graders.notebook import NotebookGrader
from graders.sandbox import SpareSandboxes
from tests.graders.notebooks import HW5, Q4, load_q4, notebook_text, solution_cells

EMPTY = notebook_text([])
PAUSE_SECONDS = 3.0
_Q4: Q4 | None = None


def grade_once(content: str) -> tuple[float, float]:
    """(seconds, fraction) of one whole grade."""
    global _Q4
    if _Q4 is None:
        _Q4 = load_q4()
    started = time.perf_counter()
    result = _Q4.grade(content)
    return time.perf_counter() - started, result.fraction


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


def timed(content: str, repeats: int, warm: bool) -> tuple[float, float]:
    grader = get_grader("notebook")
    assert isinstance(grader, NotebookGrader)
    if grader.spares is not None:
        grader.spares.close()
    grader.spares = SpareSandboxes() if warm else None
    runs = []
    for _ in range(repeats + (1 if warm else 0)):
        time.sleep(PAUSE_SECONDS)  # let the spare finish starting (warm); the same pause for cold
        runs.append(grade_once(content))
    if warm:
        runs = runs[1:]  # the first run of a kind starts cold
    return statistics.median(seconds for seconds, _ in runs), runs[0][1]


def burst(processes: int, count: int, content: str) -> float:
    # spawn, not fork: a forked copy of a process that ran torch (OpenMP) can hang in torch.
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        pool.map(grade_once, [EMPTY] * processes, chunksize=1)  # load the material, start a spare
        time.sleep(PAUSE_SECONDS)
        started = time.perf_counter()
        fractions = [fraction for _, fraction in pool.map(grade_once, [content] * count, chunksize=1)]
        elapsed = time.perf_counter() - started
    assert all(fraction == 1.0 for fraction in fractions), fractions
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--burst", type=int, default=20)
    arguments = parser.parse_args()
    solution = notebook_text(solution_cells())
    grade_once(EMPTY)  # load the material and import torch here before timing
    rows = []
    for label, content in (("solution", solution), ("empty", EMPTY)):
        cold, fraction = timed(content, arguments.repeats, warm=False)
        warm, _ = timed(content, arguments.repeats, warm=True)
        baseline = statistics.median(nbclient_once(content) for _ in range(arguments.repeats))
        rows.append((label, cold, warm, baseline, fraction))
    one = burst(1, arguments.burst, solution)
    two = burst(2, arguments.burst, solution)
    print(f"cpus: {os.cpu_count()}, repeats: {arguments.repeats}, medians in seconds")
    print()
    print(
        "| notebook | autograde, cold | autograde, warm | nbclient, fresh kernel (cells only) "
        "| warm / nbclient | score |"
    )
    print("|---|---|---|---|---|---|")
    for label, cold, warm, baseline, fraction in rows:
        ratio = warm / baseline
        print(f"| {label} | {cold:.2f} | {warm:.2f} | {baseline:.2f} | {ratio:.2f} | {fraction * 10:g}/10 |")
    print()
    print(f"| burst of {arguments.burst} solution notebooks | wall (s) | per notebook (s) |")
    print("|---|---|---|")
    print(f"| 1 worker process | {one:.1f} | {one / arguments.burst:.2f} |")
    print(f"| 2 worker processes | {two:.1f} | {two / arguments.burst:.2f} |")
    print(f"| scaling, 1 → 2 processes | {one / two:.2f}x | |")


if __name__ == "__main__":
    main()
