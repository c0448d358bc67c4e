"""With AUTOGRADE_EXECUTOR=celery the webhooks go out from `autograde worker`: real processes (an
own redis-server, the API, one Celery worker) on a scratch PostgreSQL, and the loopback receiver of
tests/test_webhooks.py verifying each request with standardwebhooks and svix.

The API is stopped once the submission is accepted: an API on the Celery executor sends no webhook,
so whatever reaches the receiver was graded and sent by the worker. The worker is then killed with
SIGKILL and a fresh one sends what was recorded meanwhile (its pool process starts its loop again).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.conftest import REQUIRE_SERVICES, create_scratch_database
from tests.test_webhooks import Receiver
from tests.worker.cluster import running_cluster, wait_for

ANSWERS = {"q1_1": {"choices": [2, 3]}}


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    url, drop = create_scratch_database("postgres", tmp_path)
    yield url
    drop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.start()
    yield receiver
    receiver.stop()


def test_the_celery_worker_delivers_webhooks(tmp_path: Path, database_url: str, receiver: Receiver) -> None:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    with running_cluster(tmp_path, database_url, AUTOGRADE_WEBHOOK_RETRY_SCALE="0.0001") as cluster:
        teacher = cluster.cli("users", "add", "teacher", "--course", "dl", "--role", "instructor").strip()
        student = cluster.cli("users", "add", "student0", "--course", "dl").strip()
        cluster.start_worker("a")
        cluster.start_api()
        cluster.wait_workers_ready()
        with httpx2.Client(base_url=cluster.base_url, timeout=10) as client:
            created = client.post(
                "/api/v1/courses/dl/webhooks",
                json={"url": receiver.url, "events": ["submission.graded"]},
                headers={"Authorization": f"Bearer {teacher}"},
            )
            assert created.status_code == 201, created.text
            receiver.secret = created.json()["secret"]
            first = client.post(
                "/api/v1/courses/dl/assignments/hw5/submissions",
                json={"answers": ANSWERS},
                headers={"Authorization": f"Bearer {student}"},
            )
            assert first.status_code == 202, first.text
        cluster.stop_api()  # the job's message left with the API's warm stop

        assert wait_for(lambda: len(receiver.received) == 1, 60), (tmp_path / "worker-a.log").read_text()
        (event,) = receiver.received
        assert (event.event_type, event.data["submission_id"]) == ("submission.graded", first.json()["id"])
        (question,) = [item for item in event.data["questions"] if item["key"] == "q1_1"]
        assert question["score"] == question["max_score"] > 0

        # A worker killed outright; its replacement's pool process runs the loop from the start.
        cluster.kill_worker("a")
        cluster.start_api()
        with httpx2.Client(base_url=cluster.base_url, timeout=10) as client:
            second = client.post(
                "/api/v1/courses/dl/assignments/hw5/submissions",
                json={"answers": ANSWERS},
                headers={"Authorization": f"Bearer {student}"},
            )
            assert second.status_code == 202, second.text
        cluster.start_worker("b")
        cluster.wait_workers_ready()
        assert wait_for(lambda: len(receiver.received) == 2, 60), (tmp_path / "worker-b.log").read_text()
        assert receiver.received[1].data["submission_id"] == second.json()["id"]
        assert receiver.refused == []
