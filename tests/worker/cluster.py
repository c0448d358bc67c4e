"""A real deployment on loopback for fault tests and bench/faults.py: an own redis-server, an API
process and Celery worker processes, a client load with Idempotency-Keys, and the final audit.

Everything it starts it stops, by process id; the shared Redis and Postgres are not touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import psycopg

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent.parent
CLI = [sys.executable, "-m", "service.cli"]
# Fast answers of three kinds, and expression answers that take the grader a while (numeric checks
# at many points), so that a worker killed at a random moment is often killed mid-job.
ANSWERS: dict[str, object] = {
    "q1_1": {"choices": [2, 3]},
    "q3_1": {"value": [6, 1, 2]},
    "q2_1": {"expression": r"- \sum_{i=1}^2 y_{t,i} \times (1 - \hat{y}_{t,i})", "format": "latex"},
    "q2_2": {"expression": r"g_{ot} \times w_{yh} \times w_{hh}^{t-i} \times \prod_{k=0}^{t-i-1} \psi'(z_t)"},
    "q2_3": {"expression": r"\sum_{i=1}^t g_{h,i} \times \psi'(z_i) \times h_{t-1}"},
    "q2_4": {"expression": r"\sum_{t=1}^3 gw_{hh,t}"},
}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: object, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if condition():  # type: ignore[operator]
                return True
        time.sleep(interval)
    return False


def psycopg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def child_pids(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


@dataclass
class Cluster:
    folder: Path
    database_url: str
    redis_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    redis: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    api_restarts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AUTOGRADE_")}
        return env | {
            "AUTOGRADE_DATABASE_URL": self.database_url,
            "AUTOGRADE_EXECUTOR": "celery",
            "AUTOGRADE_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AUTOGRADE_PORT": str(self.api_port),
            "AUTOGRADE_LOCAL_WORKERS": "0",
            "AUTOGRADE_LOG_FORMAT": "json",
            "AUTOGRADE_RATE_LIMIT_SUBMISSIONS": "0",
            "AUTOGRADE_LEASE_SECONDS": "4",
            "AUTOGRADE_HEARTBEAT_SECONDS": "1",
            "AUTOGRADE_MAX_ATTEMPTS": "20",
            "AUTOGRADE_SWEEP_SECONDS": "1",
            "AUTOGRADE_SWEEP_QUEUED_AFTER_SECONDS": "3",
            "AUTOGRADE_VISIBILITY_TIMEOUT_SECONDS": "600",
            **self.settings,
        }

    def _spawn(self, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with (self.folder / log_name).open("ab") as log:
            return subprocess.Popen(
                command,
                cwd=REPOSITORY_ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill -9 reaches its pool processes
            )

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*CLI, *args], cwd=REPOSITORY_ROOT, env=self.env(), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    # Redis: an own server, no persistence: a restart loses every message, as a crash would.
    def start_redis(self) -> None:
        redis_server = shutil.which("redis-server")
        assert redis_server, "redis-server is not installed"
        self.redis = self._spawn(
            [
                redis_server,
                "--bind", "127.0.0.1",
                "--port", str(self.redis_port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.folder),
            ],
            "redis.log",
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.redis_port, socket_connect_timeout=1)
        assert wait_for(client.ping, 20), "redis-server did not start"
        client.close()

    def stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.kill()
            self.redis.wait(timeout=10)
            self.redis = None

    def start_api(self) -> None:
        self.api = self._spawn([*CLI, "serve"], "api.log")

        def healthy() -> bool:
            assert self.api is not None
            assert self.api.poll() is None, (self.folder / "api.log").read_text()
            return httpx2.get(f"{self.base_url}/healthz", timeout=1).status_code == 200

        assert wait_for(healthy, 90, 0.2), "the API did not come up"

    def stop_api(self) -> None:
        if self.api is not None:
            self.api.send_signal(signal.SIGINT)
            try:
                self.api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.api.kill()
                self.api.wait()
            self.api = None

    def restart_api(self) -> None:
        self.stop_api()
        self.start_api()
        self.api_restarts += 1

    def start_worker(self, name: str, concurrency: int = 1, queues: str = "cpu") -> subprocess.Popen[bytes]:
        process = self._spawn(
            [*CLI, "worker", "--queues", queues, "--concurrency", str(concurrency)], f"worker-{name}.log"
        )
        self.workers[name] = process
        return process

    def wait_workers_ready(self, timeout: float = 90) -> None:
        for name, process in self.workers.items():
            log = self.folder / f"worker-{name}.log"
            assert wait_for(lambda log=log: " ready." in log.read_text(errors="replace"), timeout), (
                log.read_text()
            )
            assert process.poll() is None

    def kill_worker(self, name: str) -> None:
        """kill -9 a worker and its pool processes, mid-job if it has one."""
        process = self.workers.pop(name)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def kill_mid_job(self, name: str, whole_worker: bool, timeout: float = 30) -> int | None:
        """kill -9 worker `name` (or only its pool process) while it grades a job; the job's id.

        It watches the job table for a running job leased by one of the worker's pool processes and
        kills at once; afterwards the job must still be `running` under that lease, or the job had
        finished first and it tries again (with a fresh worker if it killed the whole one).
        """
        deadline = time.monotonic() + timeout
        with psycopg.connect(psycopg_dsn(self.database_url), autocommit=True) as connection:
            while time.monotonic() < deadline:
                pool = {str(pid): pid for pid in child_pids(self.workers[name].pid)}
                rows = connection.execute(
                    "SELECT id, lease_owner, attempt FROM grading_jobs WHERE status = 'running'"
                ).fetchall()
                held = [(row[0], row[1], row[2]) for row in rows if str(row[1]).split(":")[1:2][0] in pool]
                if not held:
                    time.sleep(0.005)
                    continue
                job_id, owner, attempt = held[0]
                if whole_worker:
                    process = self.workers.pop(name)
                    with suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
                else:
                    with suppress(ProcessLookupError):
                        os.kill(pool[str(owner).split(":")[1]], signal.SIGKILL)
                still = connection.execute(
                    "SELECT status, lease_owner, attempt FROM grading_jobs WHERE id = %s", (job_id,)
                ).fetchone()
                if still is not None and (str(still[0]), still[1], still[2]) == ("running", owner, attempt):
                    return int(job_id)
                if whole_worker:
                    self.start_worker(name)
                    self.wait_workers_ready()
        return None

    def stop_all(self) -> None:
        for name in list(self.workers):
            process = self.workers.pop(name)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.stop_api()
        self.stop_redis()


@contextmanager
def running_cluster(folder: Path, database_url: str, **settings: str) -> Iterator[Cluster]:
    cluster = Cluster(folder, database_url, settings=settings)
    try:
        cluster.cli("db", "upgrade")
        cluster.cli("assignments", "load", "reference/hw5", "--course", "dl")
        cluster.start_redis()
        yield cluster
    finally:
        cluster.stop_all()


@dataclass
class Load:
    """Client threads posting submissions with Idempotency-Keys; a POST that fails (API restarting,
    timeout) is retried with the same key until a 2xx. `accepted` holds the ids that got a 2xx."""

    base_url: str
    tokens: list[str]
    threads: int = 4
    per_second: float = 20.0
    limit: int | None = None
    accepted: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    retries: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _submit_until_accepted(self, client: httpx2.Client, token: str, deadline: float) -> None:
        key = uuid.uuid4().hex
        body = {"answers": ANSWERS}
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        while time.monotonic() < deadline:
            try:
                response = client.post(
                    f"{self.base_url}/api/v1/courses/dl/assignments/hw5/submissions",
                    json=body,
                    headers=headers,
                )
            except httpx2.TransportError:
                response = None
            if response is not None and response.status_code == 202:
                with self._lock:
                    self.accepted[response.json()["id"]] = len(ANSWERS)
                return
            if response is not None and response.status_code < 500 and response.status_code != 429:
                self.failures.append(f"{response.status_code}: {response.text[:200]}")
                return
            with self._lock:
                self.retries += 1
            time.sleep(0.2)
        self.failures.append(f"never accepted within the deadline (key {key})")

    def _run(self, index: int) -> None:
        interval = self.threads / self.per_second
        with httpx2.Client(timeout=10) as client:
            while not self._stop.is_set():
                with self._lock:
                    if self.limit is not None and len(self.accepted) >= self.limit:
                        return
                started = time.monotonic()
                token = self.tokens[index % len(self.tokens)]
                self._submit_until_accepted(client, token, time.monotonic() + 120)
                self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def start(self) -> None:
        self._workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)
        ]
        for thread in self._workers:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=150)


@dataclass(frozen=True)
class Audit:
    accepted: int
    in_database: int
    graded: int
    not_done: dict[str, str]
    wrong_result_counts: dict[str, int]
    lost: list[str]
    max_attempt: int
    retried_jobs: int


def audit(database_url: str, accepted: dict[str, int]) -> Audit:
    with psycopg.connect(psycopg_dsn(database_url)) as connection:
        jobs = connection.execute(
            "SELECT s.id::text, j.status, j.attempt, "
            "(SELECT count(*) FROM question_results r WHERE r.submission_id = s.id) "
            "FROM submissions s JOIN grading_jobs j ON j.submission_id = s.id"
        ).fetchall()
    by_id = {row[0]: row for row in jobs}
    lost = [submission_id for submission_id in accepted if submission_id not in by_id]
    not_done = {row[0]: str(row[1]) for row in jobs if row[1] != "done"}
    wrong = {
        row[0]: int(row[3])
        for row in jobs
        if row[1] == "done" and int(row[3]) != accepted.get(row[0], len(ANSWERS))
    }
    return Audit(
        accepted=len(accepted),
        in_database=len(jobs),
        graded=sum(1 for row in jobs if row[1] == "done"),
        not_done=not_done,
        wrong_result_counts=wrong,
        lost=lost,
        max_attempt=max((int(row[2]) for row in jobs), default=0),
        retried_jobs=sum(1 for row in jobs if int(row[2]) > 1),
    )


def wait_until_drained(database_url: str, timeout: float) -> bool:
    def drained() -> bool:
        with psycopg.connect(psycopg_dsn(database_url)) as connection:
            row = connection.execute(
                "SELECT count(*) FROM grading_jobs WHERE status IN ('queued', 'running')"
            ).fetchone()
        return row is not None and row[0] == 0

    return wait_for(drained, timeout, 0.5)


def job_attempts(database_url: str, job_ids: list[int | None]) -> dict[int, int]:
    with psycopg.connect(psycopg_dsn(database_url)) as connection:
        rows = connection.execute(
            "SELECT id, attempt FROM grading_jobs WHERE id = ANY(%s)",
            ([i for i in job_ids if i is not None],),
        ).fetchall()
    return {int(row[0]): int(row[1]) for row in rows}
