"""The GPU path: hw5's notebook checks and a gpu-queue worker on CUDA, against the CPU, in one run.

    .venv/bin/python bench/gpu.py [--repeats 3] [--rehearse]

1. The grader: hw5's solution notebook (question q4: its function, module, gradient and
   trained-model checks) graded N times with the grading context's device "cuda" (the sandbox
   binds the NVIDIA device nodes) and N times with "cpu", spare sandbox off on both (each grade
   starts its own sandbox, as bench/notebooks.py's "cold"). The two results must agree: verdict,
   fraction, each check's points, and every number in each check's details within a tolerance.
   Prints the median seconds per notebook on each device, and the sandbox's start-up and cells.
2. The gpu queue, end to end: a scratch database, hw5 loaded with q4 as a gpu question, the API,
   Redis and one Celery worker `autograde worker --queues gpu --device cuda`; the solution notebook
   is uploaded over HTTP N + 1 times, one at a time (the first warms the worker up, untimed). Each
   job must have gone to the gpu queue and been graded on cuda with full marks; prints the median
   seconds from upload to stored result, and the job's own grading time.

Needs CUDA, bubblewrap, PostgreSQL (AUTOGRADE_TEST_POSTGRES, default
postgresql://postgres@127.0.0.1:5432/postgres) and redis-server on PATH. Without CUDA it prints why
it skipped and exits 0. --rehearse runs every step with the CPU standing in for CUDA, to check the
script on a machine without a GPU: its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Numbers in a check's details (errors, accuracies, norms) may differ between devices in their last
# digits: cuBLAS and cuDNN sum in another order, and TF32 rounds earlier. Points may not differ.
RTOL = 1e-3
ATOL = 1e-5
# Details that are not results: timings, where the run happened, and the tolerance a check applied
# (on CUDA the check's tolerance times its cuda_tolerance_factor, by design).
UNCOMPARED_KEYS = frozenset({"seconds", "sandbox", "device", "rtol", "atol"})


def differences(cpu: Any, gpu: Any, where: str = "") -> list[str]:
    """Where two results' details disagree: keys, strings, or numbers beyond RTOL/ATOL."""
    if isinstance(cpu, dict) and isinstance(gpu, dict):
        found = (
            [f"{where}: keys {sorted(cpu.keys() ^ gpu.keys())} on one device only"]
            if cpu.keys() != gpu.keys()
            else []
        )
        for key in sorted(cpu.keys() & gpu.keys()):
            if key not in UNCOMPARED_KEYS and not key.endswith("_seconds"):
                found += differences(cpu[key], gpu[key], f"{where}.{key}")
        return found
    if isinstance(cpu, list) and isinstance(gpu, list):
        if len(cpu) != len(gpu):
            return [f"{where}: {len(cpu)} items on cpu, {len(gpu)} on cuda"]
        return [
            line
            for index, pair in enumerate(zip(cpu, gpu, strict=True))
            for line in differences(*pair, f"{where}[{index}]")
        ]
    numbers = (int, float)
    if isinstance(cpu, numbers) and isinstance(gpu, numbers) and not isinstance(cpu, bool):
        if math.isclose(cpu, gpu, rel_tol=RTOL, abs_tol=ATOL) or (math.isnan(cpu) and math.isnan(gpu)):
            return []
    elif cpu == gpu:
        return []
    return [f"{where}: cpu {cpu!r}, cuda {gpu!r}"]


def seconds_text(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def compare(cpu: Any, gpu: Any) -> list[str]:
    """What differs between the CPU's and the GPU's result of the same notebook."""
    found = []
    if cpu.verdict != gpu.verdict:
        found.append(f"verdict: cpu {cpu.verdict}, cuda {gpu.verdict}")
    if not math.isclose(cpu.fraction, gpu.fraction, abs_tol=1e-9):
        found.append(f"fraction: cpu {cpu.fraction}, cuda {gpu.fraction}")
    checks_cpu, checks_gpu = cpu.details.get("checks", {}), gpu.details.get("checks", {})
    return found + differences(checks_cpu, checks_gpu, "checks")


def grade_on_each_device(repeats: int, device: str) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds per grade and the last result, per device ("cpu", and `device` for the GPU)."""
    from graders import get_grader
    from graders.notebook import NotebookGrader
    from tests.graders.notebooks import Q4, load_q4, notebook_text, solution_cells

    grader = get_grader("notebook")
    assert isinstance(grader, NotebookGrader)  # each device has its fork server, as on a worker
    q4 = load_q4()
    solution = notebook_text(solution_cells())
    graders = {"cpu": q4, "cuda": Q4(q4.config, replace(q4.context, device=device))}
    seconds: dict[str, list[float]] = {"cpu": [], "cuda": []}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for label, question in graders.items():  # interleaved, so that drift affects both alike
            started = time.perf_counter()
            results[label] = question.grade(solution)
            seconds[label].append(time.perf_counter() - started)
    return seconds, results


def gpu_queue_end_to_end(repeats: int, device: str) -> tuple[list[float], list[float]]:
    """Upload-to-result seconds and the jobs' own grading seconds, through a gpu-queue worker."""
    import uuid

    import httpx2
    import psycopg

    from tests.graders.notebooks import SOLUTION
    from tests.worker.cluster import Cluster, psycopg_dsn, wait_for

    admin_dsn = os.environ.get("AUTOGRADE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"autograde_bench_gpu_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    folder = Path(tempfile.mkdtemp(prefix="autograde-bench-gpu-"))
    material = folder / "hw5"
    shutil.copytree(SOLUTION.parent, material)
    toml = (material / "assignment.toml").read_text()
    assert toml.count('resource_class = "cpu"') == 1, "hw5 should name one resource class, q4's"
    (material / "assignment.toml").write_text(
        toml.replace('resource_class = "cpu"', 'resource_class = "gpu"')
    )
    cluster = Cluster(folder, url, settings={"AUTOGRADE_DEVICE": device, "AUTOGRADE_LOG_FORMAT": "text"})
    try:
        cluster.cli("db", "upgrade")
        cluster.cli("assignments", "load", str(material), "--course", "bench")
        token = cluster.cli("users", "add", "student", "--course", "bench").strip()
        cluster.start_redis()
        cluster.start_api()
        cluster.start_worker("gpu", queues="gpu")
        cluster.wait_workers_ready()
        dsn = psycopg_dsn(url)
        notebook = SOLUTION.read_bytes()
        totals: list[float] = []
        grading: list[float] = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            response = httpx2.post(
                f"{cluster.base_url}/api/v1/courses/bench/assignments/hw5/submissions",
                data={"answers": "{}"},
                files={"q4": ("q4.ipynb", notebook)},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert response.status_code == 202, response.text
            submission = response.json()["id"]

            def graded(submission: str = submission) -> bool:
                with psycopg.connect(dsn) as connection:
                    row = connection.execute(
                        "SELECT status FROM grading_jobs WHERE submission_id = %s", (submission,)
                    ).fetchone()
                return row is not None and row[0] in ("done", "error")

            assert wait_for(graded, 300, 0.05), f"not graded in 300 s; logs in {folder}"
            totals.append(time.perf_counter() - started)
            with psycopg.connect(dsn) as connection:
                job = connection.execute(
                    "SELECT queue, status, extract(epoch FROM finished_at - started_at) "
                    "FROM grading_jobs WHERE submission_id = %s",
                    (submission,),
                ).fetchone()
                result = connection.execute(
                    "SELECT verdict, score, max_score, details FROM question_results "
                    "WHERE submission_id = %s",
                    (submission,),
                ).fetchone()
            assert job is not None, submission
            assert result is not None, submission
            assert (job[0], job[1]) == ("gpu", "done"), job
            verdict, score, max_score, details = result
            assert (verdict, score) == ("correct", max_score), (verdict, score, result[3].get("checks"))
            expected_device = "cuda" if device.startswith("cuda") else "cpu"
            assert details["sandbox"]["device"] == expected_device, details["sandbox"]
            grading.append(float(job[2]))
        return totals[1:], grading[1:]
    finally:
        cluster.stop_all()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rehearse", action="store_true", help="the CPU stands in for CUDA (checks the script, not a GPU)"
    )
    arguments = parser.parse_args()
    if arguments.rehearse:
        device = "cpu"
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        print("bench/gpu.py: skipped: CUDA is not available here (torch.cuda.is_available() is False)")
        return 0
    name = (
        torch.cuda.get_device_name(0) if device == "cuda" else "none (rehearsal: the CPU stands in for CUDA)"
    )
    print(f"GPU: {name}; torch {torch.__version__}; cpus: {os.cpu_count()}; repeats: {arguments.repeats}")

    seconds, results = grade_on_each_device(arguments.repeats, device)
    mismatches = compare(results["cpu"], results["cuda"])
    print()
    print("| hw5 solution notebook, q4 | seconds per notebook (median) | sandbox start-up | cells | score |")
    print("|---|---|---|---|---|")
    for label in ("cpu", "cuda"):
        result = results[label]
        sandbox = result.details["sandbox"]
        shown = f"{label} (the CPU, rehearsing)" if label == "cuda" and device == "cpu" else label
        print(
            f"| grader, device {shown} | {statistics.median(seconds[label]):.2f} "
            f"| {seconds_text(sandbox['startup_seconds'])} | {seconds_text(sandbox['cells_seconds'])} "
            f"| {result.fraction * 10:g}/10 ({result.verdict}) |"
        )
    ratio = statistics.median(seconds["cpu"]) / statistics.median(seconds["cuda"])
    print(f"cpu / cuda: {ratio:.2f}x; results agree: {'yes' if not mismatches else 'NO'}")
    for line in mismatches:
        print(f"  differs: {line}")

    totals, grading = gpu_queue_end_to_end(arguments.repeats, device)
    print()
    print("| gpu queue, one Celery worker | upload to stored result (median) | job's grading time (median) |")
    print("|---|---|---|")
    print(f"| hw5 q4 as a gpu question, {len(totals)} timed | {statistics.median(totals):.2f} s "
          f"| {statistics.median(grading):.2f} s |")  # fmt: skip
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
