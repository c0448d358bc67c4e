"""Readiness and the Prometheus exposition."""

from __future__ import annotations

import hmac
from collections import defaultdict

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from graders.sandbox import SandboxMode, sandbox_problem
from service.config import Environment, ExecutorKind, Settings
from service.errors import NotFound, Unauthenticated
from service.health import repository
from service.models import JobStatus
from service.worker.executor import Executor

# Seconds from the submission's commit to its stored result.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def readiness_problems(session: Session, settings: Settings, executor: Executor) -> list[str]:
    problems = []
    try:
        repository.ping(session)
    except SQLAlchemyError:
        problems.append("the database does not answer")
    broker_problem = executor.broker_problem()
    if broker_problem is not None:
        problems.append(broker_problem)
    if grades_in_this_process(settings):
        # A real sandboxed run (~0.1 s) each time: an API whose grading processes cannot sandbox
        # would grade every notebook `error`.
        problem = sandbox_problem_here(settings)
        if problem is not None:
            problems.append(f"the grading processes cannot run the sandbox ({problem})")
    return problems


def check_metrics_access(settings: Settings, token: str | None) -> None:
    """With AUTOGRADE_METRICS_TOKEN set, only its bearer may read /metrics; without it, only a
    development server serves them (a production one has no /metrics to find)."""
    expected = settings.metrics_token
    if expected is None:
        if settings.env is Environment.PRODUCTION:
            raise NotFound("Metrics are not served: AUTOGRADE_METRICS_TOKEN is not set.")
        return
    # Constant time: how long a wrong guess takes tells nothing about the right token.
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthenticated("The metrics token is required (Authorization: Bearer <token>).")


def grades_in_this_process(settings: Settings) -> bool:
    return settings.executor is ExecutorKind.LOCAL and settings.local_workers > 0


def sandbox_problem_here(settings: Settings) -> str | None:
    """Why student code cannot be sandboxed on this machine, or None (also in unsafe-dev mode)."""
    return sandbox_problem(SandboxMode(settings.sandbox))


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in labels.items()
    )
    return "{" + inner + "}"


def prometheus_text(session: Session) -> str:
    """The metrics in Prometheus text format 0.0.4."""
    lines: list[str] = []
    jobs = repository.jobs_by_queue_and_status(session)

    lines += [
        "# HELP autograde_queue_depth Jobs waiting to be claimed, per queue.",
        "# TYPE autograde_queue_depth gauge",
    ]
    depth: dict[str, int] = defaultdict(int, {"cpu": 0, "gpu": 0})
    for queue, status, count, _attempts in jobs:
        if status == JobStatus.QUEUED.value:
            depth[queue] += count
    lines += [
        f"autograde_queue_depth{_labels(queue=queue)} {count}" for queue, count in sorted(depth.items())
    ]

    lines += ["# HELP autograde_jobs Grading jobs per queue and status.", "# TYPE autograde_jobs gauge"]
    lines += [f"autograde_jobs{_labels(queue=q, status=s)} {count}" for q, s, count, _a in sorted(jobs)]

    lines += [
        "# HELP autograde_job_attempts_total Claims of grading jobs (a retried job counts each attempt).",
        "# TYPE autograde_job_attempts_total counter",
    ]
    attempts: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    for queue, status, count, attempt_sum in jobs:
        attempts[queue] += attempt_sum
        if status == JobStatus.ERROR.value:
            failures[queue] += count
    lines += [f"autograde_job_attempts_total{_labels(queue=q)} {n}" for q, n in sorted(attempts.items())]
    lines += [
        "# HELP autograde_job_failures_total Jobs that ended `error` (every attempt failed).",
        "# TYPE autograde_job_failures_total counter",
    ]
    lines += [f"autograde_job_failures_total{_labels(queue=q)} {n}" for q, n in sorted(failures.items())]

    lines += [
        "# HELP autograde_grader_errors_total Answers whose grader raised (verdict `error`).",
        "# TYPE autograde_grader_errors_total counter",
    ]
    errors = repository.question_errors_by_kind(session)
    lines += [f"autograde_grader_errors_total{_labels(kind=k)} {n}" for k, n in sorted(errors.items())]

    lines += [
        "# HELP autograde_job_latency_seconds From submission to stored result, per grader kind "
        "(a job with answers of several kinds counts once in each).",
        "# TYPE autograde_job_latency_seconds histogram",
    ]
    latencies: dict[str, list[float]] = defaultdict(list)
    for kind, created, finished in repository.finished_job_times(session):
        latencies[kind].append(max((finished - created).total_seconds(), 0.0))
    for kind, values in sorted(latencies.items()):
        for bound in LATENCY_BUCKETS:
            count = sum(1 for value in values if value <= bound)
            lines.append(f"autograde_job_latency_seconds_bucket{_labels(kind=kind, le=repr(bound))} {count}")
        lines.append(f"autograde_job_latency_seconds_bucket{_labels(kind=kind, le='+Inf')} {len(values)}")
        lines.append(f"autograde_job_latency_seconds_sum{_labels(kind=kind)} {sum(values):.6f}")
        lines.append(f"autograde_job_latency_seconds_count{_labels(kind=kind)} {len(values)}")
    return "\n".join(lines) + "\n"
