"""Readiness, and the Prometheus metrics read from the job and result tables."""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
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


class JobTableCollector:
    """A prometheus-client collector whose figures are read, at each scrape, from the job and result
    tables rather than counted in this process: every API process reports the same."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def collect(self) -> Iterator[Metric]:
        jobs = repository.jobs_by_queue_and_status(self._session)
        yield _queue_depth(jobs)
        yield _jobs(jobs)
        yield from _attempts_and_failures(jobs)
        yield _grader_errors(repository.question_errors_by_kind(self._session))
        yield _latency(repository.finished_job_times(self._session))


def prometheus_text(session: Session) -> str:
    """The metrics in Prometheus text format 0.0.4."""
    # A registry per scrape: the collector holds this request's session, and nothing is global.
    registry = CollectorRegistry()
    registry.register(JobTableCollector(session))
    return generate_latest(registry).decode()


JobCounts = list[tuple[str, str, int, int]]


def _queue_depth(jobs: JobCounts) -> GaugeMetricFamily:
    depth: dict[str, int] = defaultdict(int, {"cpu": 0, "gpu": 0})
    for queue, status, count, _attempts in jobs:
        if status == JobStatus.QUEUED.value:
            depth[queue] += count
    family = GaugeMetricFamily(
        "autograde_queue_depth", "Jobs waiting to be claimed, per queue.", labels=["queue"]
    )
    for queue, count in sorted(depth.items()):
        family.add_metric([queue], count)
    return family


def _jobs(jobs: JobCounts) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "autograde_jobs", "Grading jobs per queue and status.", labels=["queue", "status"]
    )
    for queue, status, count, _attempts in sorted(jobs):
        family.add_metric([queue, status], count)
    return family


def _attempts_and_failures(jobs: JobCounts) -> tuple[CounterMetricFamily, CounterMetricFamily]:
    attempts: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    for queue, status, count, attempt_sum in jobs:
        attempts[queue] += attempt_sum
        if status == JobStatus.ERROR.value:
            failures[queue] += count
    attempts_family = CounterMetricFamily(
        "autograde_job_attempts_total",
        "Claims of grading jobs (a retried job counts each attempt).",
        labels=["queue"],
    )
    for queue, total in sorted(attempts.items()):
        attempts_family.add_metric([queue], total)
    failures_family = CounterMetricFamily(
        "autograde_job_failures_total", "Jobs that ended `error` (every attempt failed).", labels=["queue"]
    )
    for queue, total in sorted(failures.items()):
        failures_family.add_metric([queue], total)
    return attempts_family, failures_family


def _grader_errors(errors: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "autograde_grader_errors_total", "Answers whose grader raised (verdict `error`).", labels=["kind"]
    )
    for kind, total in sorted(errors.items()):
        family.add_metric([kind], total)
    return family


def _latency(finished: list[tuple[str, datetime, datetime]]) -> HistogramMetricFamily:
    latencies: dict[str, list[float]] = defaultdict(list)
    for kind, created, done in finished:
        latencies[kind].append(max((done - created).total_seconds(), 0.0))
    family = HistogramMetricFamily(
        "autograde_job_latency_seconds",
        "From submission to stored result, per grader kind "
        "(a job with answers of several kinds counts once in each).",
        labels=["kind"],
    )
    for kind, values in sorted(latencies.items()):
        buckets = [
            (repr(bound), float(sum(1 for value in values if value <= bound))) for bound in LATENCY_BUCKETS
        ]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([kind], buckets, sum(values))
    return family
