"""P1: end-to-end submissions of hw5's light questions over HTTP on Postgres, against a bare endpoint.

One command:  .venv/bin/python bench/submissions.py [--duration 20] [--clients 64] [--workers 1]

It creates a fresh Postgres database, migrates it, loads the demo (course `demo`, hw5) and one
student per client, then alternates phases (bare, autograde, bare, autograde, ...). Each phase
starts its server as a subprocess (`bench/bare_app.py`, or `autograde serve` with
AUTOGRADE_LOCAL_WORKERS grading processes beside the API), runs a short warm-up, then drives it
for --duration seconds from a second process (bench/loadgen.py: N closed-loop clients, each with
its own connection and token). For autograde it then waits, bounded, until every accepted
submission is graded, reading the job and submission rows directly. It prints a table of medians
across repeats, the ratios against the targets, and saves a JSON under bench/results/. Every
process it starts is stopped and the database is dropped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import math
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import URL, Engine, create_engine, make_url, text

from service.auth.service import issue_token
from service.config import REPOSITORY_ROOT, Settings
from service.courses.service import enroll, ensure_course, ensure_user
from service.db import make_engine, make_session_factory
from service.demo import DEMO_ASSIGNMENT_FOLDER, DEMO_COURSE, prepare_demo
from service.migrations import upgrade_database
from service.models import Role

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
LIGHT_QUESTIONS = ("q1_1", "q1_2", "q1_3", "q3_1", "q3_1b", "q3_2")
AUTOGRADE_PATH = "/api/v1/courses/demo/assignments/hw5/submissions"
BARE_PATH = "/bare/submissions"
TARGET_THROUGHPUT_RATIO = 0.8
TARGET_P99_RATIO = 1.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the request body


def _attention(inputs: dict[str, Any], hard: bool) -> list[float]:
    q, keys, values = inputs["q"], inputs["keys"], inputs["values"]
    scores = [sum(k * x for k, x in zip(key, q, strict=True)) for key in keys]
    if hard:
        return [float(v) for v in values[scores.index(max(scores))]]
    top = max(scores)
    weights = [math.exp(score - top) for score in scores]
    total = sum(weights)
    return [sum(w * row[j] for w, row in zip(weights, values, strict=True)) / total for j in range(3)]


def light_answers() -> dict[str, Any]:
    """Correct answers to hw5's light questions (choice, fixed-input tensor, manual text)."""
    material = tomllib.loads((DEMO_ASSIGNMENT_FOLDER / "assignment.toml").read_text(encoding="utf-8"))
    questions = {question["id"]: question for question in material["questions"]}
    answers: dict[str, dict[str, Any]] = {
        "q1_1": {"choices": questions["q1_1"]["config"]["correct"]},
        "q1_2": {"choices": questions["q1_2"]["config"]["correct"]},
        "q1_3": {"choices": questions["q1_3"]["config"]["correct"]},
        "q3_1": {"value": _attention(questions["q3_1"]["config"]["inputs"], hard=True)},
        "q3_1b": {"value": _attention(questions["q3_1b"]["config"]["inputs"], hard=False)},
        "q3_2": {
            "text": "Argmax is not differentiable, so no gradient reaches q and the keys; "
            "it is cheap and easy to interpret."
        },
    }
    assert tuple(answers) == LIGHT_QUESTIONS
    return {"answers": answers}


# ---------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark dies without cleaning up (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Processes:
    """Every subprocess the benchmark starts, each in its own process group, stopped on exit."""

    def __init__(self) -> None:
        self._live: list[subprocess.Popen[bytes]] = []
        self.unclean_stops = 0

    def start(self, command: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            process = subprocess.Popen(
                list(command),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # the parent is single-threaded
                cwd=REPOSITORY_ROOT,
            )
        self._live.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
        """SIGTERM the leader and let it stop its own children; then SIGKILL the whole group.

        Only the leader gets SIGTERM, as `docker stop` does: `autograde serve` hangs for good in
        its shutdown when a grading process is killed under it (LocalExecutor.stop -> Event.set
        waits for the dead sleeper; see docs/performance.md).
        """
        if process.poll() is None:  # not reaped yet, so the pid is still this process's
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.unclean_stops += 1
        # Whatever is left of the group (grading processes, a hung leader) is killed.
        deadline = time.monotonic() + 10.0
        while _group_alive(process.pid) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)
        if process in self._live:
            self._live.remove(process)

    def stop_all(self) -> None:
        for process in list(self._live):
            self.stop(process, grace=5.0)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies, which cannot run, do not count)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{LOOPBACK}:{port}/healthz"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{_tail(log)}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=1.0) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- CPU accounting from /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces) start at field 3 (state).
    return raw[raw.rindex(")") + 2 :].split()


def _all_processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, command name, CPU seconds incl. reaped children)."""
    found: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if fields is None:
            continue
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17, i.e. indexes 11-14 here.
        ticks = sum(int(value) for value in fields[11:15])
        found[pid] = (int(fields[1]), name, ticks / CLOCK_TICKS)
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    server: float
    children: float
    postgres: float
    machine_busy: float
    machine_total: float


def cpu_snapshot(server_pid: int) -> CpuSnapshot:
    processes = _all_processes()
    server = processes.get(server_pid, (0, "", 0.0))[2]
    children = 0.0
    frontier = [server_pid]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _name, cpu) in processes.items():
            if ppid == parent:
                children += cpu
                frontier.append(pid)
    postgres = sum(cpu for _ppid, name, cpu in processes.values() if name == "postgres")
    busy, total = _machine_cpu()
    return CpuSnapshot(time.monotonic(), server, children, postgres, busy, total)


# ---------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median_of(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else math.nan


# ---------------------------------------------------------------- one phase


@dataclass
class PhaseResult:
    target: str
    repeat: int
    requests: int
    ok: int
    errors: int
    error_samples: list[str]
    status_counts: dict[str, int]
    load_seconds: float
    accepted_per_s: float
    post_p50_ms: float
    post_p99_ms: float
    post_mean_ms: float
    warmup_requests: int
    warmup_errors: int
    cpu_ms_per_request: dict[str, float]
    machine_busy_percent: float
    loadgen_cpu_s: float
    foreign_busy_percent: float = math.nan
    # Machine busy % just before the phase (after waiting for quiet, see --quiet-wait).
    busy_before_percent: float = math.nan
    # Autograde only.
    submitted: int | None = None
    graded: int | None = None
    grading_errors: int | None = None
    ungraded: int | None = None
    backlog_at_load_end: int | None = None
    graded_window_s: float | None = None
    drain_s: float | None = None
    graded_per_s: float | None = None
    graded_p50_ms: float | None = None
    graded_p99_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Bench:
    args: argparse.Namespace
    database_url: str
    engine: Engine
    tokens: list[str]
    body: dict[str, Any]
    workdir: Path
    processes: Processes
    stamp: str


def _run_loadgen(bench: Bench, port: int, path: str, duration: float, label: str) -> dict[str, Any]:
    config = bench.workdir / f"{label}.config.json"
    output = bench.workdir / f"{label}.out.json"
    config.write_text(
        json.dumps(
            {
                "host": LOOPBACK,
                "port": port,
                "path": path,
                "body": bench.body,
                "tokens": bench.tokens,
                "clients": bench.args.clients,
                "duration": duration,
                "impl": bench.args.client,
                "timeout": bench.args.request_timeout,
            }
        ),
        encoding="utf-8",
    )
    log = bench.workdir / f"{label}.loadgen.log"
    command = [sys.executable, str(BENCH_DIR / "loadgen.py"), str(config), str(output)]
    process = bench.processes.start(command, dict(os.environ), log)
    limit = duration + bench.args.request_timeout + 60.0
    try:
        code = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"load generator still running after {limit:.0f} s") from None
    finally:
        bench.processes.stop(process, grace=2.0)
    if code != 0:
        raise RuntimeError(f"load generator failed ({code}):\n{_tail(log)}")
    result: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return result


def _max_job_id(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT coalesce(max(id), 0) FROM grading_jobs")).scalar_one())


def _grading_progress(engine: Engine, after_job_id: int) -> tuple[int, int]:
    """(jobs, finished jobs) among jobs with id > after_job_id."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE status IN ('done', 'error')) "
                "FROM grading_jobs WHERE id > :after"
            ),
            {"after": after_job_id},
        ).one()
    return int(row[0]), int(row[1])


def _wait_graded(engine: Engine, after_job_id: int, timeout: float) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while True:
        total, finished = _grading_progress(engine, after_job_id)
        if finished >= total or time.monotonic() >= deadline:
            return total, finished
        time.sleep(0.2)


def _grading_outcome(engine: Engine, after_job_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        summary = connection.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE j.status = 'done'), "
                "count(*) FILTER (WHERE j.status = 'error'), "
                "extract(epoch FROM min(s.created_at)), extract(epoch FROM max(s.graded_at)) "
                "FROM grading_jobs j JOIN submissions s ON s.id = j.submission_id WHERE j.id > :after"
            ),
            {"after": after_job_id},
        ).one()
        latencies = connection.execute(
            text(
                "SELECT extract(epoch FROM (s.graded_at - s.created_at)) * 1000.0 "
                "FROM grading_jobs j JOIN submissions s ON s.id = j.submission_id "
                "WHERE j.id > :after AND j.status = 'done' AND s.graded_at IS NOT NULL"
            ),
            {"after": after_job_id},
        ).scalars()
        graded_ms = [float(value) for value in latencies]
        verdicts = connection.execute(
            text(
                "SELECT r.verdict, count(*) FROM question_results r "
                "JOIN grading_jobs j ON j.submission_id = r.submission_id "
                "WHERE j.id > :after GROUP BY r.verdict ORDER BY r.verdict"
            ),
            {"after": after_job_id},
        ).all()
    return {
        "submitted": int(summary[0]),
        "done": int(summary[1]),
        "error": int(summary[2]),
        "first_created": float(summary[3]) if summary[3] is not None else None,
        "last_graded": float(summary[4]) if summary[4] is not None else None,
        "graded_ms": graded_ms,
        # A sanity check of the request body: every light answer is right (q3_2 waits for a TA).
        "verdicts": {str(verdict): int(count) for verdict, count in verdicts},
    }


def _summarise_load(load: dict[str, Any]) -> dict[str, Any]:
    statuses: list[int] = load["statuses"]
    latencies: list[float] = load["latencies_ms"]
    ok_latencies = [lat for lat, st in zip(latencies, statuses, strict=True) if 200 <= st < 300]
    counts: dict[str, int] = {}
    for status in statuses:
        key = str(status) if status else "exception"
        counts[key] = counts.get(key, 0) + 1
    elapsed = float(load["elapsed"])
    return {
        "requests": len(statuses),
        "ok": len(ok_latencies),
        "errors": len(statuses) - len(ok_latencies),
        "status_counts": counts,
        "elapsed": elapsed,
        "accepted_per_s": len(ok_latencies) / elapsed if elapsed > 0 else math.nan,
        "p50": percentile(ok_latencies, 50),
        "p99": percentile(ok_latencies, 99),
        "mean": statistics.fmean(ok_latencies) if ok_latencies else math.nan,
    }


def _start_profiler(bench: Bench, pid: int, label: str) -> subprocess.Popen[bytes] | None:
    if bench.args.py_spy is None:
        return None
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    output = RESULTS_DIR / f"profile-{bench.stamp}-{label}-{bench.args.py_spy_mode}.txt"
    command = [
        str(bench.args.py_spy),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        *(["--gil"] if bench.args.py_spy_mode == "gil" else ["--idle"]),
        "--rate",
        "200",
        "--duration",
        str(max(1, round(bench.args.duration))),
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    return bench.processes.start(command, dict(os.environ), bench.workdir / f"{label}.py-spy.log")


def wait_for_quiet(limit_s: float, threshold_percent: float = 20.0, window_s: float = 2.0) -> float:
    """Wait (at most limit_s) until the machine is nearly idle before a phase: the CPUs are shared
    with other users, whose load would be measured as ours. Returns the last busy percentage."""
    deadline = time.monotonic() + limit_s
    while True:
        busy_before, total_before = _machine_cpu()
        time.sleep(window_s)
        busy_after, total_after = _machine_cpu()
        total = total_after - total_before
        busy_percent = 100.0 * (busy_after - busy_before) / total if total > 0 else 0.0
        if busy_percent < threshold_percent or time.monotonic() >= deadline:
            return busy_percent


def run_phase(bench: Bench, target: str, repeat: int) -> PhaseResult:
    args = bench.args
    idle_busy = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else math.nan
    label = f"{target}-{repeat}"
    port = free_port()
    log = bench.workdir / f"{label}.server.log"
    env = dict(os.environ)
    if args.db_pool_size is not None:
        # Both servers read it: the bare app builds its engine from the same Settings.
        env["AUTOGRADE_DB_POOL_SIZE"] = str(args.db_pool_size)
    if target == "bare":
        command = [
            sys.executable,
            str(BENCH_DIR / "bare_app.py"),
            "--database-url",
            bench.database_url,
            "--port",
            str(port),
            "--style",
            args.bare_style,
            "--extra-hops",
            str(args.bare_extra_hops),
            "--extra-selects",
            str(args.bare_extra_selects),
            *(["--extra-insert"] if args.bare_extra_insert else []),
        ]
        path = BARE_PATH
    else:
        command = [str(VENV_BIN / "autograde"), "serve"]
        env.update(
            AUTOGRADE_DATABASE_URL=bench.database_url,
            AUTOGRADE_HOST=LOOPBACK,
            AUTOGRADE_PORT=str(port),
            AUTOGRADE_LOCAL_WORKERS=str(args.workers),
            # P1 is the one-machine setup: grading processes beside the API, whatever the shell says.
            AUTOGRADE_EXECUTOR="local",
        )
        path = AUTOGRADE_PATH
    server = bench.processes.start(command, env, log)
    try:
        wait_healthy(port, server, log)
        warmup = _summarise_load(_run_loadgen(bench, port, path, args.warmup, f"{label}-warmup"))
        if target == "autograde":
            # Start the measurement with an empty queue: warm-up submissions are graded first.
            _wait_graded(bench.engine, 0, args.grading_timeout)
        marker = _max_job_id(bench.engine) if target == "autograde" else 0
        profiler = _start_profiler(bench, server.pid, label)
        before = cpu_snapshot(server.pid)
        load = _run_loadgen(bench, port, path, args.duration, label)
        at_load_end = cpu_snapshot(server.pid)
        if profiler is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.wait(timeout=30.0)
            bench.processes.stop(profiler, grace=5.0)
        summary = _summarise_load(load)
        result = PhaseResult(
            target=target,
            repeat=repeat,
            requests=summary["requests"],
            ok=summary["ok"],
            errors=summary["errors"],
            error_samples=list(load["error_samples"]),
            status_counts=summary["status_counts"],
            load_seconds=summary["elapsed"],
            accepted_per_s=summary["accepted_per_s"],
            post_p50_ms=summary["p50"],
            post_p99_ms=summary["p99"],
            post_mean_ms=summary["mean"],
            warmup_requests=warmup["requests"],
            warmup_errors=warmup["errors"],
            cpu_ms_per_request={},
            machine_busy_percent=math.nan,
            loadgen_cpu_s=float(load["cpu_user_s"]) + float(load["cpu_system_s"]),
            busy_before_percent=idle_busy,
        )
        end = at_load_end
        if target == "autograde":
            total, finished = _grading_progress(bench.engine, marker)
            result.backlog_at_load_end = total - finished
            _wait_graded(bench.engine, marker, args.grading_timeout)
            end = cpu_snapshot(server.pid)
            outcome = _grading_outcome(bench.engine, marker)
            result.submitted = outcome["submitted"]
            result.graded = outcome["done"]
            result.grading_errors = outcome["error"]
            result.ungraded = outcome["submitted"] - outcome["done"] - outcome["error"]
            first_post = float(load["wall_origin"])
            if outcome["first_created"] is not None:
                first_post = min(first_post, outcome["first_created"])
            if outcome["last_graded"] is not None and result.graded:
                result.graded_window_s = outcome["last_graded"] - first_post
                result.graded_per_s = result.graded / result.graded_window_s
                load_end = float(load["wall_origin"]) + result.load_seconds
                result.drain_s = max(0.0, outcome["last_graded"] - load_end)
            result.graded_p50_ms = percentile(outcome["graded_ms"], 50)
            result.graded_p99_ms = percentile(outcome["graded_ms"], 99)
            result.extra["verdicts"] = outcome["verdicts"]
            if result.submitted != result.ok:
                result.extra["submitted_vs_accepted"] = f"{result.submitted} rows vs {result.ok} 2xx"
        served = max(result.ok, 1)
        # API CPU in the load window; grading CPU until the queue is drained; Postgres likewise.
        result.cpu_ms_per_request = {
            "api": (at_load_end.server - before.server) * 1000.0 / served,
            "grading": (end.children - before.children) * 1000.0 / served,
            "postgres": (end.postgres - before.postgres) * 1000.0 / served,
            "loadgen": result.loadgen_cpu_s * 1000.0 / served,
        }
        busy = at_load_end.machine_busy - before.machine_busy
        total_cpu = at_load_end.machine_total - before.machine_total
        ours = (
            (at_load_end.server - before.server)
            + (at_load_end.children - before.children)
            + (at_load_end.postgres - before.postgres)
            + result.loadgen_cpu_s
        )
        if total_cpu > 0:
            result.machine_busy_percent = 100.0 * busy / total_cpu
            # CPU used by processes that are not this benchmark's (other users of the machine).
            result.foreign_busy_percent = max(0.0, 100.0 * (busy - ours) / total_cpu)
        return result
    finally:
        bench.processes.stop(server)


# ---------------------------------------------------------------- setup and teardown


def _admin_engine(base: URL) -> Engine:
    return create_engine(base, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)


def create_database(base: URL, name: str) -> None:
    admin = _admin_engine(base)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def drop_database(base: URL, name: str) -> None:
    admin = _admin_engine(base)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def prepare_database(engine: Engine, settings: Settings, students: int) -> list[str]:
    """Migrate, load the demo, and add one enrolled student with a token per client."""
    upgrade_database(engine)
    with make_session_factory(engine)() as session, session.begin():
        accounts = prepare_demo(session, settings)
        course = ensure_course(session, DEMO_COURSE)
        tokens = [accounts.student_token]
        for index in range(students):
            user = ensure_user(session, f"bench_student_{index:03d}", f"Bench student {index}")
            enroll(session, course, user, Role.STUDENT)
            tokens.append(issue_token(session, user.id, "bench"))
    # One token per client; the demo student's is the spare.
    return tokens[1:] if students else tokens


def _git_state() -> str:
    """HEAD, plus a hash of uncommitted changes to the measured code (others edit it concurrently)."""

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments], cwd=REPOSITORY_ROOT, capture_output=True, text=True, check=False
        ).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    diff = git("diff", "HEAD", "--", "service", "graders", "migrations", "reference")
    if not diff:
        return head
    return f"{head}+dirty:{hashlib.sha256(diff.encode()).hexdigest()[:12]}"


def machine_info(engine: Engine) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with engine.connect() as connection:
        postgres = str(connection.execute(text("SHOW server_version")).scalar_one())
    return {
        "git": _git_state(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgres": postgres,
    }


# ---------------------------------------------------------------- report


def aggregate(results: list[PhaseResult], target: str) -> dict[str, Any]:
    mine = [r for r in results if r.target == target]

    def med(pick: Callable[[PhaseResult], float | None]) -> float:
        return median_of([pick(r) for r in mine])

    return {
        "repeats": len(mine),
        "requests": sum(r.requests for r in mine),
        "errors": sum(r.errors for r in mine),
        "grading_errors": sum((r.grading_errors or 0) + (r.ungraded or 0) for r in mine),
        "accepted_per_s": med(lambda r: r.accepted_per_s),
        "graded_per_s": med(lambda r: r.graded_per_s),
        "post_p50_ms": med(lambda r: r.post_p50_ms),
        "post_p99_ms": med(lambda r: r.post_p99_ms),
        "graded_p50_ms": med(lambda r: r.graded_p50_ms),
        "graded_p99_ms": med(lambda r: r.graded_p99_ms),
        "backlog_at_load_end": med(lambda r: r.backlog_at_load_end),
        "drain_s": med(lambda r: r.drain_s),
        "machine_busy_percent": med(lambda r: r.machine_busy_percent),
        "foreign_busy_percent": med(lambda r: r.foreign_busy_percent),
        "busy_before_percent": med(lambda r: r.busy_before_percent),
        "cpu_ms_per_request": {
            key: med(lambda r, key=key: r.cpu_ms_per_request.get(key))  # type: ignore[misc]
            for key in ("api", "grading", "postgres", "loadgen")
        },
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(summary: dict[str, Any]) -> str:
    bare, auto = summary["bare"], summary["autograde"]
    header = [
        "target",
        "requests",
        "errors",
        "accepted/s",
        "graded/s",
        "POST p50 ms",
        "POST p99 ms",
        "POST→graded p50 ms",
        "POST→graded p99 ms",
    ]
    rows = [
        [
            name,
            str(data["requests"]),
            str(data["errors"] + data["grading_errors"]),
            _fmt(data["accepted_per_s"]),
            _fmt(data["graded_per_s"]),
            _fmt(data["post_p50_ms"]),
            _fmt(data["post_p99_ms"]),
            _fmt(data["graded_p50_ms"]),
            _fmt(data["graded_p99_ms"]),
        ]
        for name, data in (("bare", bare), ("autograde", auto))
    ]
    ratios = summary["ratios"]
    checks = [
        [
            "throughput: autograde graded/s ÷ bare accepted/s",
            _fmt(ratios["throughput"], 2),
            f"≥ {TARGET_THROUGHPUT_RATIO:.2f}",
            ratios["throughput_verdict"],
        ],
        [
            "latency: autograde POST p99 ÷ bare POST p99",
            _fmt(ratios["p99"], 2),
            f"≤ {TARGET_P99_RATIO:.2f}",
            ratios["p99_verdict"],
        ],
        [
            "errors: non-2xx, exceptions, grading errors, ungraded",
            str(ratios["errors"]),
            "= 0",
            ratios["errors_verdict"],
        ],
    ]
    if ratios["per_pair_throughput"]:
        checks[0][0] += f" (per pair: {', '.join(_fmt(v, 2) for v in ratios['per_pair_throughput'])})"
        checks[1][0] += f" (per pair: {', '.join(_fmt(v, 2) for v in ratios['per_pair_p99'])})"
    cpu_rows = [
        [
            name,
            _fmt(data["cpu_ms_per_request"]["api"], 2),
            _fmt(data["cpu_ms_per_request"]["grading"], 2),
            _fmt(data["cpu_ms_per_request"]["postgres"], 2),
            _fmt(data["cpu_ms_per_request"]["loadgen"], 2),
            _fmt(data["machine_busy_percent"], 0),
            _fmt(data["foreign_busy_percent"], 0),
            _fmt(data["busy_before_percent"], 0),
            _fmt(data["backlog_at_load_end"], 0),
            _fmt(data["drain_s"], 1),
        ]
        for name, data in (("bare", bare), ("autograde", auto))
    ]
    args = summary["args"]
    title = (
        f"P1 submissions: {args['clients']} clients ({args['client']}), {args['duration']:.0f} s per phase, "
        f"{args['repeats']} repeats, {args['workers']} grading process(es); "
        f"db pool {summary['machine']['db_pool']}; {summary['machine']['cpus']} CPUs; "
        f"code {summary['machine']['git']}; "
        "medians across repeats, errors summed"
    )
    cpu_header = [
        "target",
        "api",
        "grading",
        "postgres",
        "loadgen",
        "busy %",
        "other %",
        "before %",
        "backlog",
        "drain s",
    ]
    title += f"\nbare: {args['bare_style']} style, no auth, one INSERT per request"
    if args["bare_extra_hops"] or args["bare_extra_selects"] or args["bare_extra_insert"]:
        title += (
            f"\nNOT P1: ladder bare variant with +{args['bare_extra_hops']} thread-pool hops, "
            f"+{args['bare_extra_selects']} SELECTs{', +1 INSERT' if args['bare_extra_insert'] else ''}"
        )
    if summary["unclean_server_stops"]:
        title += f"\nWARNING: {summary['unclean_server_stops']} server(s) ignored SIGTERM and were killed"
    return "\n\n".join(
        [
            title,
            _table(header, rows),
            _table(["check", "value", "target", "result"], checks),
            "CPU ms per accepted request. busy %: the whole machine during the load; other %: CPU "
            "of processes not started by this run;\nbefore %: machine busy just before the phase; "
            "backlog: jobs not graded when the load stopped; drain s: from then to the last grade",
            _table(cpu_header, cpu_rows),
        ]
    )


def summarise(
    args: argparse.Namespace, info: dict[str, Any], results: list[PhaseResult], unclean_stops: int
) -> dict[str, Any]:
    bare, auto = aggregate(results, "bare"), aggregate(results, "autograde")
    throughput = auto["graded_per_s"] / bare["accepted_per_s"] if bare["accepted_per_s"] else math.nan
    p99 = auto["post_p99_ms"] / bare["post_p99_ms"] if bare["post_p99_ms"] else math.nan
    errors = bare["errors"] + bare["grading_errors"] + auto["errors"] + auto["grading_errors"]
    # Each autograde phase against the bare phase just before it: robust to drifting foreign load.
    pairs = [
        (b, a)
        for b in results
        for a in results
        if b.target == "bare" and a.target == "autograde" and a.repeat == b.repeat
    ]
    pair_throughput = [
        (a.graded_per_s or 0.0) / b.accepted_per_s if b.accepted_per_s else math.nan for b, a in pairs
    ]
    pair_p99 = [a.post_p99_ms / b.post_p99_ms if b.post_p99_ms else math.nan for b, a in pairs]
    return {
        "benchmark": "P1 submissions",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": {key: value for key, value in vars(args).items() if key != "database_url"},
        "machine": info,
        "bare": bare,
        "autograde": auto,
        "ratios": {
            "throughput": throughput,
            "throughput_verdict": "PASS" if throughput >= TARGET_THROUGHPUT_RATIO else "MISS",
            "p99": p99,
            "p99_verdict": "PASS" if p99 <= TARGET_P99_RATIO else "MISS",
            "errors": errors,
            "errors_verdict": "PASS" if errors == 0 else "MISS",
            "per_pair_throughput": pair_throughput,
            "per_pair_p99": pair_p99,
        },
        # Servers that did not exit within the grace period after SIGTERM and were killed.
        "unclean_server_stops": unclean_stops,
        "phases": [asdict(r) for r in results],
    }


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="P1: autograde submissions over HTTP vs a bare same-stack endpoint."
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per phase")
    parser.add_argument("--clients", type=int, default=64, help="concurrent closed-loop clients")
    parser.add_argument("--workers", type=int, default=1, help="grading processes beside the API")
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a database to connect to for CREATE/DROP DATABASE; the benchmark gets its own",
    )
    parser.add_argument("--repeats", type=int, default=3, help="bare/autograde pairs, alternated")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load per phase")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx2"],
        default="raw",
        help="load generator client: raw asyncio streams (cheapest) or httpx2",
    )
    parser.add_argument(
        "--db-pool-size",
        type=int,
        default=None,
        help="AUTOGRADE_DB_POOL_SIZE for both servers (default: the service's setting); the pool "
        "holds up to twice this many connections",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        help="path to a py-spy binary: record the server and its grading processes during each "
        "measured load into bench/results/ as collapsed stacks (adds sampling overhead)",
    )
    parser.add_argument(
        "--py-spy-mode",
        choices=["gil", "wall"],
        default="gil",
        help="gil: only threads holding the GIL (where CPU goes); wall: every thread, waiting too",
    )
    parser.add_argument(
        "--bare-style",
        choices=["one-call", "sync-dep"],
        default="one-call",
        help="one-call: the bare route does its database work in one worker-thread call, as the "
        "service does; sync-dep: a sync route with a yield session dependency (see bench/bare_app.py)",
    )
    ladder = parser.add_argument_group(
        "ladder", "make the bare endpoint do part of autograde's work, to attribute the gap (not P1)"
    )
    ladder.add_argument("--bare-extra-hops", type=int, default=0, help="trivial sync dependencies")
    ladder.add_argument("--bare-extra-selects", type=int, default=0, help="single-row SELECTs")
    ladder.add_argument("--bare-extra-insert", action="store_true", help="a second INSERT")
    ladder.add_argument(
        "--targets",
        choices=["both", "bare", "autograde"],
        default="both",
        help="run only one side (no ratios then)",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=40.0,
        help="client timeout per request; longer than the pool timeout (30 s) so that a server "
        "that gives up answers 500 before the client does",
    )
    parser.add_argument(
        "--grading-timeout", type=float, default=180.0, help="longest wait for the queue to drain"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each phase, wait up to this many seconds for the machine to be < 20%% busy "
        "(0: do not wait)",
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: bench/results/)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.clients < 1 or args.workers < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("duration, clients, workers and repeats must be positive")
    base = make_url(args.database_url)
    if base.get_backend_name() != "postgresql" or base.host not in (LOOPBACK, "localhost", "::1"):
        parser.error("--database-url must be a Postgres URL on a loopback address")
    return args


def _raise_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def bench_database(base: URL) -> Iterator[str]:
    name = f"autograde_bench_{secrets.token_hex(4)}"
    create_database(base, name)
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(base, name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Also when started in the background, where SIGINT comes ignored: Ctrl-C must clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    base = make_url(args.database_url)
    processes = Processes()
    results: list[PhaseResult] = []
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    with contextlib.ExitStack() as stack:
        stack.callback(processes.stop_all)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="autograde-bench-")))
        database_url = stack.enter_context(bench_database(base))
        settings = Settings(database_url=database_url)
        engine = make_engine(settings)
        stack.callback(engine.dispose)
        print(f"database {make_url(database_url).database}: migrating and loading the demo", flush=True)
        tokens = prepare_database(engine, settings, args.clients)
        info = machine_info(engine)
        pool = args.db_pool_size if args.db_pool_size is not None else settings.db_pool_size
        info["db_pool"] = f"{pool}+{pool} overflow (AUTOGRADE_DB_POOL_SIZE={pool})"
        bench = Bench(args, database_url, engine, tokens, light_answers(), workdir, processes, stamp)
        for repeat in range(args.repeats):
            for target in ("bare", "autograde") if args.targets == "both" else (args.targets,):
                started = time.monotonic()
                result = run_phase(bench, target, repeat)
                results.append(result)
                graded = "" if result.graded_per_s is None else f", {result.graded_per_s:.1f} graded/s"
                print(
                    f"  {target:<9} repeat {repeat + 1}/{args.repeats}: {result.ok}/{result.requests} ok, "
                    f"{result.accepted_per_s:.1f} accepted/s{graded}, POST p50 {result.post_p50_ms:.1f} ms "
                    f"p99 {result.post_p99_ms:.1f} ms ({time.monotonic() - started:.0f} s)",
                    flush=True,
                )
                if result.errors or result.grading_errors or result.ungraded:
                    print(
                        f"    errors: statuses {result.status_counts}, grading errors "
                        f"{result.grading_errors or 0}, ungraded {result.ungraded or 0}; "
                        f"e.g. {result.error_samples[:2]}",
                        flush=True,
                    )
        summary = summarise(args, info, results, processes.unclean_stops)
    # Saved first: the measurements must survive a problem in the printing.
    output: Path = args.output or RESULTS_DIR / f"submissions-{stamp}-w{args.workers}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    print()
    print(render(summary))
    shown = output.relative_to(REPOSITORY_ROOT) if output.is_relative_to(REPOSITORY_ROOT) else output
    print(f"\nsaved {shown}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: servers stopped, database dropped", file=sys.stderr)
        sys.exit(130)
