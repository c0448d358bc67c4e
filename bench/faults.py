"""The long fault run: 10,000 submissions through the Celery path while, in turn and again and again,
a worker is killed with SIGKILL mid-job, Redis is stopped and started empty, the API process is
restarted, and PostgreSQL is stopped (immediate shutdown, as a crash) and started again.

    .venv/bin/python bench/faults.py [--submissions 10000] [--rate 40] [--fault-every 12]

Everything runs on loopback and is started here: an own PostgreSQL cluster (initdb on a free port, in
a temporary folder; as root it runs as the `postgres` user), an own redis-server, one API process and
two Celery worker processes. The shared servers are not touched. At the end it audits the database:
every submission that got a 2xx must have exactly one result per question, and no job may be left
queued, running or in error. It prints the figures (docs/performance.md has a run's table).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.worker.cluster import (
    Cluster,
    Load,
    audit,
    free_port,
    wait_until_drained,
)


class OwnPostgres:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.data = folder / "pgdata"
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.bin = Path(binaries[-1]) if binaries else Path(shutil.which("pg_ctl") or "pg_ctl").parent
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_postgres, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")  # its cluster, socket and log live here
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        self._run(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "autograde"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        log = str(self.folder / "pg.log")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/autograde"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=40.0, help="submissions per second offered")
    parser.add_argument("--fault-every", type=float, default=12.0, help="seconds between faults")
    parser.add_argument("--down-seconds", type=float, default=4.0, help="how long Redis/PostgreSQL stay down")
    arguments = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="autograde-faults-"))
    postgres = OwnPostgres(folder)
    postgres.init()
    cluster = Cluster(folder, postgres.url)
    faults: Counter[str] = Counter()
    killed_mid_job: list[int] = []
    started = time.monotonic()
    try:
        cluster.cli("db", "upgrade")
        cluster.cli("assignments", "load", "reference/hw5", "--course", "dl")
        tokens = [cluster.cli("users", "add", f"student{i}", "--course", "dl").strip() for i in range(20)]
        cluster.start_redis()
        cluster.start_worker("w0")
        cluster.start_worker("w1")
        cluster.start_api()
        cluster.wait_workers_ready()
        load = Load(
            cluster.base_url, tokens, threads=8, per_second=arguments.rate, limit=arguments.submissions
        )
        load.start()
        schedule = ["postgres", "worker", "redis", "api", "pool"]
        generation = 2
        step = 0
        while len(load.accepted) < arguments.submissions and not load.failures:
            time.sleep(arguments.fault_every)
            fault = schedule[step % len(schedule)]
            step += 1
            if fault == "worker":
                victim = sorted(cluster.workers)[0]
                job = cluster.kill_mid_job(victim, whole_worker=True, timeout=10)
                if job is not None:
                    killed_mid_job.append(job)
                cluster.workers.pop(victim, None)
                cluster.start_worker(f"w{generation}")
                generation += 1
            elif fault == "pool":
                job = cluster.kill_mid_job(sorted(cluster.workers)[0], whole_worker=False, timeout=10)
                if job is not None:
                    killed_mid_job.append(job)
            elif fault == "redis":
                cluster.stop_redis()
                time.sleep(arguments.down_seconds)
                cluster.start_redis()
            elif fault == "api":
                cluster.restart_api()
            elif fault == "postgres":
                postgres.stop("immediate")
                time.sleep(arguments.down_seconds)
                postgres.start()
            faults[fault] += 1
            print(
                f"{time.monotonic() - started:7.1f} s  {fault:8s}  accepted {len(load.accepted)}", flush=True
            )
        load.stop()
        load_seconds = time.monotonic() - started
        drained = wait_until_drained(cluster.database_url, 900)
        drain_seconds = time.monotonic() - started - load_seconds
        result = audit(cluster.database_url, load.accepted)
    finally:
        cluster.stop_all()
        postgres.stop("fast")
        shutil.rmtree(folder, ignore_errors=True)

    print()
    print("| figure | value |")
    print("|---|---|")
    rows = {
        "submissions accepted (2xx)": result.accepted,
        "submissions in the database": result.in_database,
        "graded (job done)": result.graded,
        "lost (2xx but no row)": len(result.lost),
        "not done (queued/running/error)": len(result.not_done),
        "wrong number of results (lost or duplicated)": len(result.wrong_result_counts),
        "client retries (POST failed, retried with its Idempotency-Key)": load.retries,
        "client failures": len(load.failures),
        "faults injected": ", ".join(f"{name} x{count}" for name, count in sorted(faults.items())),
        "jobs killed mid-grading (verified)": len(killed_mid_job),
        "jobs with more than one attempt": result.retried_jobs,
        "highest attempt": result.max_attempt,
        "load phase": f"{load_seconds:.0f} s",
        "drain after the load": f"{drain_seconds:.0f} s",
    }
    for name, value in rows.items():
        print(f"| {name} | {value} |")
    ok = (
        drained
        and not result.lost
        and not result.not_done
        and not result.wrong_result_counts
        and result.in_database == result.accepted
        and not load.failures
    )
    print("\nRESULT:", "nothing lost, nothing duplicated, nothing stuck" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
