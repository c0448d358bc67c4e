"""The Celery executor's parts on a real Redis (an own redis-server) and the real databases: messages
carry one job id to the job's queue, a claim by id happens once, the sweeper re-sends what the broker
lost, requeues expired leases and gives up after the last attempt, one sweeper at a time."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.config import ExecutorKind, Settings
from service.db import make_engine, make_session_factory
from service.grading import repository
from service.grading.runner import GradingRunner
from service.migrations import upgrade_database
from service.models import GradingJob, JobStatus, utcnow
from service.worker.celery_executor import CeleryExecutor, broker_reachable
from service.worker.sweeper import Sweeper
from tests.conftest import REQUIRE_SERVICES, Api, create_scratch_database
from tests.worker.cluster import free_port, wait_for

ANSWERS = {"q1_2": {"choices": [3]}}


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """An own redis-server: these tests flush it, which the shared one must never see."""
    server = shutil.which("redis-server")
    if server is None:
        message = "redis-server is not installed"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_connect_timeout=1)
        assert wait_for(client.ping, 20)
        client.close()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def broker(redis_port: int) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_port)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def celery_settings(settings: Settings, redis_port: int) -> Settings:
    return settings.model_copy(
        update={
            "executor": ExecutorKind.CELERY,
            "broker_url": f"redis://127.0.0.1:{redis_port}/0",
            "sweep_queued_after_seconds": 0.05,
            "sweep_seconds": 3600.0,  # the tests sweep by hand
        }
    )


@pytest.fixture
def executor(celery_settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[CeleryExecutor]:
    executor = CeleryExecutor(celery_settings, session_factory)
    yield executor
    executor.stop()


def job_ids_in_queue(broker: redis.Redis, queue: str) -> list[int]:
    """The job ids of the waiting messages (Celery protocol 2: body = [args, kwargs, embed])."""
    ids = []
    for raw in broker.lrange(queue, 0, -1):
        message = json.loads(raw)
        assert message["headers"]["task"] == "autograde.grade_job"
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert kwargs == {}
        ids.extend(args)
    return ids


def submit_jobs(api: Api, count: int) -> list[int]:
    for _ in range(count):
        assert api.submit("student", ANSWERS).status_code == 202
    return api.executor.notified[-count:]


def test_notify_sends_exactly_the_job_id_to_the_jobs_queue(
    api: Api, executor: CeleryExecutor, broker: redis.Redis
) -> None:
    job_ids = submit_jobs(api, 2)
    executor.start()
    executor.notify(job_ids)
    assert wait_for(lambda: broker.llen("cpu") == 2, 10)
    assert sorted(job_ids_in_queue(broker, "cpu")) == sorted(job_ids)
    assert broker.llen("gpu") == 0


def test_a_second_message_for_a_job_claims_nothing(api: Api, session_factory: sessionmaker[Session]) -> None:
    (job_id,) = submit_jobs(api, 1)
    first = GradingRunner(session_factory, api.runner._settings, "first", ["cpu"])
    second = GradingRunner(session_factory, api.runner._settings, "second", ["cpu"])
    claimed = first.claim_one(job_id)
    assert claimed is not None
    assert claimed.attempt == 1
    assert second.run_job(job_id) is False  # the duplicate message: the lease is held
    first.grade_and_store([claimed])
    assert second.run_job(job_id) is False  # and once done, nothing is claimable either
    with session_factory() as session:
        job = session.get(GradingJob, job_id)
        assert job is not None
        assert (job.status, job.attempt) == (JobStatus.DONE, 1)


def _age_messages(session_factory: sessionmaker[Session]) -> None:
    time.sleep(0.1)  # past sweep_queued_after_seconds


def test_the_sweeper_resends_only_what_the_broker_lost(
    api: Api, executor: CeleryExecutor, broker: redis.Redis, session_factory: sessionmaker[Session]
) -> None:
    # Committed, but the message never left (PrairieLearn#3116: a crash between commit and send).
    job_ids = submit_jobs(api, 3)
    _age_messages(session_factory)
    report = executor.sweeper.sweep_once()
    assert report.resent == 3
    assert sorted(job_ids_in_queue(broker, "cpu")) == sorted(job_ids)

    # Every queued job has its message waiting: a long backlog is not sent again and again.
    _age_messages(session_factory)
    assert executor.sweeper.sweep_once().resent == 0
    assert broker.llen("cpu") == 3

    # Redis restarts empty: everything is sent again, once.
    broker.flushall()
    _age_messages(session_factory)
    assert executor.sweeper.sweep_once().resent == 3
    assert sorted(job_ids_in_queue(broker, "cpu")) == sorted(job_ids)


def test_the_sweeper_requeues_expired_leases_and_gives_up_after_the_last_attempt(
    api: Api, executor: CeleryExecutor, broker: redis.Redis, session_factory: sessionmaker[Session]
) -> None:
    dead, exhausted = submit_jobs(api, 2)
    runner = api.runner
    assert runner.claim_one(dead) is not None
    assert runner.claim_one(exhausted) is not None
    with session_factory() as session, session.begin():
        session.execute(
            update(GradingJob)
            .where(GradingJob.id.in_([dead, exhausted]))
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        session.execute(update(GradingJob).where(GradingJob.id == exhausted).values(max_attempts=1))

    report = executor.sweeper.sweep_once()
    assert (report.gave_up, report.requeued, report.resent) == (1, 1, 1)
    assert job_ids_in_queue(broker, "cpu") == [dead]
    with session_factory() as session:
        jobs = {
            job.id: job
            for job in session.scalars(select(GradingJob).where(GradingJob.id.in_([dead, exhausted])))
        }
    assert jobs[dead].status is JobStatus.QUEUED
    assert jobs[exhausted].status is JobStatus.ERROR
    assert "gave up" in (jobs[exhausted].last_error or "")
    # The error is visible to staff on the submission.
    submission = api.client.get(
        "/api/v1/courses/demo/assignments/hw5/submissions", headers=api.accounts.header("ta")
    ).json()["items"]
    assert "error" in {item["status"] for item in submission}

    # The requeued job is graded by its next attempt; the dead worker's attempt could not write.
    assert api.runner.run_job(dead)
    with session_factory() as session:
        job = session.get(GradingJob, dead)
        assert job is not None
        assert (job.status, job.attempt) == (JobStatus.DONE, 2)


def test_a_send_to_a_dead_broker_fails_fast_and_the_submission_stands(
    api: Api, celery_settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    dead_broker = celery_settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    executor = CeleryExecutor(dead_broker, session_factory)
    try:
        (job_id,) = submit_jobs(api, 1)
        started = time.monotonic()
        executor.notify([job_id])  # the request's part: no broker call at all
        assert time.monotonic() - started < 0.1
        started = time.monotonic()
        assert executor.send_jobs([job_id]) == 0  # the sender thread's part fails, quickly
        assert time.monotonic() - started < 5
        assert not broker_reachable(dead_broker)
    finally:
        executor.stop()
    with session_factory() as session:
        job = session.get(GradingJob, job_id)
        assert job is not None
        assert job.status is JobStatus.QUEUED


def test_one_sweeper_at_a_time_on_postgres(tmp_path: Path, redis_port: int) -> None:
    url, drop = create_scratch_database("postgres", tmp_path)
    engine = make_engine(Settings(database_url=url))
    try:
        upgrade_database(engine)
        factory = make_session_factory(engine)
        settings = Settings(database_url=url, executor=ExecutorKind.CELERY)
        sweeper = Sweeper(factory, settings, lambda _job, _queue: True, lambda _queue: 0)
        with factory() as holder, holder.begin():
            assert repository.try_sweeper_lock(holder)
            assert sweeper.sweep_once().ran is False
        assert sweeper.sweep_once().ran is True
    finally:
        engine.dispose()
        drop()


def test_readyz_reports_a_dead_broker(
    api: Api, celery_settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    # The app as create_app builds it for AUTOGRADE_EXECUTOR=celery: readiness asks its executor.
    app_state = api.client.app.state  # type: ignore[attr-defined]
    app_settings, app_executor = app_state.settings, app_state.executor
    dead_broker = celery_settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    executors = [
        CeleryExecutor(celery_settings, session_factory),
        CeleryExecutor(dead_broker, session_factory),
    ]
    try:
        app_state.settings, app_state.executor = celery_settings, executors[0]
        assert api.client.get("/readyz").json() == {"status": "ready"}
        app_state.settings, app_state.executor = dead_broker, executors[1]
        response = api.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "not_ready"
        assert "broker" in response.json()["error"]["message"]
    finally:
        app_state.settings, app_state.executor = app_settings, app_executor
        for executor in executors:
            executor.stop()


def _worker_command(*args: str, executor: str = "celery") -> subprocess.CompletedProcess[str]:
    import os
    import sys

    from tests.worker.cluster import REPOSITORY_ROOT

    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTOGRADE_")}
    env["AUTOGRADE_EXECUTOR"] = executor
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "worker", *args],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_gpu_worker_refuses_to_start_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: the gpu worker would start")
    done = _worker_command("--queues", "gpu", "--device", "cuda")
    assert done.returncode == 2
    assert "CUDA is not available" in done.stdout


def test_a_worker_refuses_unknown_queues_and_devices() -> None:
    unknown_queue = _worker_command("--queues", "cpu,tpu")
    assert unknown_queue.returncode == 2
    assert "--queues takes cpu, gpu" in unknown_queue.stdout
    bad_device = _worker_command("--device", "npu")
    assert bad_device.returncode == 2
    assert "Bad device" in bad_device.stdout
