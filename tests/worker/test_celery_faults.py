"""The Celery path under faults, on real processes: an API, Celery workers, an own redis-server, the
shared PostgreSQL. While submissions stream in, workers are killed with SIGKILL (whole worker, then
one pool process), Redis is stopped and started empty, and the API is restarted. Afterwards every
submission that got a 2xx has exactly one result per question: none lost, none duplicated, none stuck.

The long version (10,000 submissions, a PostgreSQL restart too) is `bench/faults.py`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES, create_scratch_database
from tests.worker.cluster import Load, audit, job_attempts, running_cluster, wait_until_drained


@pytest.fixture
def database_url(tmp_path: Path) -> object:
    url, drop = create_scratch_database("postgres", tmp_path)
    yield url
    drop()


def test_nothing_lost_or_duplicated_when_workers_redis_and_api_fail(
    tmp_path: Path, database_url: str
) -> None:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    with running_cluster(tmp_path, database_url) as cluster:
        tokens = [cluster.cli("users", "add", f"student{i}", "--course", "dl").strip() for i in range(4)]
        cluster.start_worker("a")
        cluster.start_worker("b")
        cluster.start_api()
        cluster.wait_workers_ready()
        load = Load(cluster.base_url, tokens, threads=4, per_second=15)
        load.start()
        try:
            time.sleep(3)
            killed_with_worker = cluster.kill_mid_job("a", whole_worker=True)  # kill -9 mid-job
            cluster.start_worker("c")
            time.sleep(3)
            cluster.stop_redis()  # every waiting message is lost with it
            time.sleep(3)
            cluster.start_redis()
            time.sleep(3)
            cluster.restart_api()
            time.sleep(2)
            killed_with_pool_process = cluster.kill_mid_job("b", whole_worker=False)
            time.sleep(3)
        finally:
            load.stop()
        assert not load.failures, load.failures[:5]
        assert wait_until_drained(database_url, 60), "jobs still queued or running a minute after the load"
        result = audit(database_url, load.accepted)
        attempts = job_attempts(database_url, [killed_with_worker, killed_with_pool_process])

    assert result.accepted >= 50, "the load was too small to mean anything"
    assert result.lost == []
    assert result.not_done == {}
    assert result.wrong_result_counts == {}
    # A submission is never stored twice, even when its POST was retried across the API restart.
    assert result.in_database == result.accepted
    assert result.graded == result.accepted
    # The jobs killed mid-grading were graded again, by a later attempt.
    assert killed_with_worker is not None
    assert killed_with_pool_process is not None
    assert all(attempt >= 2 for attempt in attempts.values()), attempts
