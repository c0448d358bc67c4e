"""P4: a burst of CPU-bound grading jobs drained by 1 and by 2 Celery worker processes, in one run.

    .venv/bin/python bench/workers.py [--jobs 300] [--repeats 3]

It needs PostgreSQL (AUTOGRADE_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/postgres;
a scratch database is created and dropped) and redis-server on PATH (an own server on a free port).
Each round: start N `autograde worker --queues cpu --concurrency 1` processes and wait until they
are ready and warm, store a burst of submissions to bench/material/burst (one tensor question whose
reference output takes ~0.15 s of pure-Python CPU per answer: hw5's graders take about a millisecond,
so a burst of hw5 jobs measures database round trips, not grading), send their ids, and time until
the job table shows every job done. The
table gives the median over the repeats, jobs/s and the ratio to one worker.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.auth.service import authenticate
from service.config import ExecutorKind, Settings
from service.db import make_engine, make_session_factory, transaction
from service.submissions.schemas import SubmissionCreate
from service.submissions.service import NewSubmission, create_submission
from service.worker.celery_executor import CeleryExecutor
from tests.worker.cluster import Cluster, psycopg_dsn, wait_for

ADMIN_DSN = os.environ.get("AUTOGRADE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
# A tensor question whose reference output is recomputed per answer by ~0.15 s of pure-Python work.
BURST_MATERIAL = Path(__file__).resolve().parent / "material" / "burst"
BURST_COURSE = "dl"
ANSWERS = {"q1": {"value": [0.5, 0.5, 0.5, 0.5]}}


def scratch_database() -> tuple[str, str]:
    name = f"autograde_bench_workers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_burst(settings: Settings, token: str, count: int) -> list[int]:
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    job_ids = []
    with transaction(factory) as session:
        principal = authenticate(session, token)
        command = NewSubmission(principal, BURST_COURSE, "burst", SubmissionCreate(answers=ANSWERS))
        for _ in range(count):
            job_ids.append(create_submission(session, settings, command).job_id)
    engine.dispose()
    return job_ids


def drain_seconds(cluster: Cluster, settings: Settings, token: str, workers: int, jobs: int) -> float:
    for index in range(workers):
        cluster.start_worker(f"w{workers}-{index}", concurrency=1)
    cluster.wait_workers_ready()
    engine = make_engine(settings)
    executor = CeleryExecutor(settings, make_session_factory(engine))
    dsn = psycopg_dsn(settings.database_url)

    def all_done(ids: list[int]) -> bool:
        with psycopg.connect(dsn) as connection:
            row = connection.execute(
                "SELECT count(*) FROM grading_jobs WHERE status <> 'done' AND id = ANY(%s)", (ids,)
            ).fetchone()
        return row is not None and row[0] == 0

    def warm_processes(ids: list[int]) -> int:
        with psycopg.connect(dsn) as connection:
            row = connection.execute(
                "SELECT count(DISTINCT lease_owner) FROM grading_jobs WHERE id = ANY(%s)", (ids,)
            ).fetchone()
        return int(row[0]) if row else 0

    # Warm-up, untimed: every process loads the assignment, its reference and point cache once.
    warm: list[int] = []
    while warm_processes(warm) < workers:
        batch = store_burst(settings, token, 2 * workers)
        executor.send_jobs(batch)
        assert wait_for(lambda batch=batch: all_done(batch), 120, 0.05)
        warm += batch

    job_ids = store_burst(settings, token, jobs)

    def drained() -> bool:
        return all_done(job_ids)

    started = time.perf_counter()
    assert executor.send_jobs(job_ids) == len(job_ids)
    assert wait_for(drained, 900, 0.05), "the burst was not drained"
    elapsed = time.perf_counter() - started
    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            "SELECT count(DISTINCT lease_owner), max(attempt), "
            "sum(extract(epoch FROM finished_at - started_at)) FROM grading_jobs WHERE id = ANY(%s)",
            (job_ids,),
        ).fetchone()
        verdicts = connection.execute(
            "SELECT r.verdict, count(*) FROM question_results r JOIN grading_jobs j "
            "ON j.submission_id = r.submission_id WHERE j.id = ANY(%s) GROUP BY r.verdict",
            (job_ids,),
        ).fetchall()
    assert row is not None
    # Every job of the burst was really graded, once: one `incorrect` result each.
    assert dict(verdicts) == {"incorrect": len(job_ids)}, verdicts
    # A sanity check on the clock: the burst cannot drain faster than its grading time spread evenly.
    print(
        f"  {workers} worker(s): {elapsed:.2f} s; {row[0]} process(es) graded; highest attempt {row[1]}; "
        f"grading time summed {float(row[2]):.1f} s",
        flush=True,
    )
    executor.stop()
    engine.dispose()
    for name in list(cluster.workers):
        cluster.kill_worker(name)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()

    load_before = os.getloadavg()[0]
    name, url = scratch_database()
    folder = Path(tempfile.mkdtemp(prefix="autograde-bench-workers-"))
    # One intra-op thread per grading process: the processes are the parallelism.
    cluster = Cluster(folder, url, settings={"AUTOGRADE_LOG_FORMAT": "text"})
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        cluster.cli("db", "upgrade")
        cluster.cli("assignments", "load", str(BURST_MATERIAL), "--course", BURST_COURSE)
        token = cluster.cli("users", "add", "bench", "--course", BURST_COURSE).strip()
        cluster.start_redis()
        settings = Settings(
            database_url=url,
            executor=ExecutorKind.CELERY,
            broker_url=f"redis://127.0.0.1:{cluster.redis_port}/0",
        )
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(arguments.repeats):
            for workers in (1, 2):  # interleaved, so that drift affects both alike
                times[workers].append(drain_seconds(cluster, settings, token, workers, arguments.jobs))
    finally:
        cluster.stop_all()
        drop_database(name)
        shutil.rmtree(folder, ignore_errors=True)

    median = {workers: statistics.median(values) for workers, values in times.items()}
    load_after = os.getloadavg()[0]
    print(
        f"{arguments.jobs} CPU-bound jobs (bench/material/burst: ~0.15 s of Python per job), "
        f"{arguments.repeats} repeats, {os.cpu_count()} cores, load average before {load_before:.1f}, "
        f"after {load_after:.1f} (other processes on the machine skew the ratio)"
    )
    print("| worker processes | drain time (median) | jobs/s | scaling vs 1 |")
    print("|---|---|---|---|")
    for workers in (1, 2):
        rate = arguments.jobs / median[workers]
        print(f"| {workers} | {median[workers]:.2f} s | {rate:.1f} | {median[1] / median[workers]:.2f} |")
    print(
        "all rounds (s):",
        {workers: [round(value, 2) for value in values] for workers, values in times.items()},
    )


if __name__ == "__main__":
    main()
