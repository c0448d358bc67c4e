"""The service as a user runs it: real processes, real HTTP, real grading processes."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import REPOSITORY_ROOT, create_scratch_database

CLI = [sys.executable, "-m", "service.cli"]
# Random, as production requires (a repeated character is refused).
PRODUCTION_KEY = secrets.token_urlsafe(48)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTOGRADE_")}
    return env | {"AUTOGRADE_DATABASE_URL": database_url, "AUTOGRADE_PORT": str(port), **extra}


@contextmanager
def running(
    command: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=REPOSITORY_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"the service exited early:\n{log.read_text()}"
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, f"the service did not come up:\n{log.read_text()}"
            time.sleep(0.2)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_graded(url: str, token: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = httpx2.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
        if body["status"] in ("graded", "error") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [*CLI, *args], cwd=REPOSITORY_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demo_serves_and_its_curl_example_gets_graded(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(
        f"sqlite:///{tmp_path / 'demo.db'}",
        port,
        AUTOGRADE_DEMO_STUDENT_TOKEN="student-demo-token",
        AUTOGRADE_DEMO_TA_TOKEN="ta-demo-token",
    )
    log = tmp_path / "demo.log"
    with running([*CLI, "demo"], env, port, log):
        printed = log.read_text()
        assert "student token: student-demo-token" in printed
        assert "TA token:      ta-demo-token" in printed
        # Both example assignments are loaded, and the second's notebook upload is printed.
        assert "assignment hw5 version 1, course demo" in printed
        assert "assignment layers version 1, course demo" in printed
        assert "-F q3=@reference/layers/solution.ipynb" in printed
        layers = httpx2.get(
            f"http://127.0.0.1:{port}/api/v1/courses/demo/assignments/layers",
            headers={"Authorization": "Bearer student-demo-token"},
            timeout=5,
        )
        assert layers.status_code == 200, layers.text
        assert [question["id"] for question in layers.json()["questions"]] == ["q1", "q2", "q3"]
        curl_line = next(
            line.strip() for line in printed.splitlines() if line.strip().startswith("curl -s -X POST")
        )
        assert f"http://127.0.0.1:{port}/api/v1/courses/demo/assignments/hw5/submissions" in curl_line
        posted = subprocess.run(
            ["bash", "-c", curl_line], capture_output=True, text=True, timeout=30, check=True
        )
        submission_id = re.search(r'"id":"([0-9a-f-]{36})"', posted.stdout)
        assert submission_id, posted.stdout
        url = f"http://127.0.0.1:{port}/api/v1/submissions/{submission_id.group(1)}"
        result = wait_until_graded(url, "student-demo-token")
        assert result["status"] == "graded"
        assert {key: q["verdict"] for key, q in result["questions"].items()} == {
            "q1_1": "correct",
            "q3_1": "correct",
        }
        assert result["score"] == 3.0

    # Running the demo again keeps the data: same tokens, same assignment version.
    with running([*CLI, "demo"], env, port, log):
        assert "assignment hw5 version 1" in log.read_text()
        assert "assignment layers version 1" in log.read_text()
        again = httpx2.get(url, headers={"Authorization": "Bearer ta-demo-token"}, timeout=5).json()
        assert again["status"] == "graded"


def test_queued_jobs_survive_a_restart_on_postgres(tmp_path: Path) -> None:
    url, drop = create_scratch_database("postgres", tmp_path)
    port = free_port()
    try:
        env = service_env(url, port)
        cli("db", "upgrade", env=env)
        assert "hw5: stored as version 1" in cli(
            "assignments", "load", "reference/hw5", "--course", "dl", env=env
        )
        assert "unchanged, still version 1" in cli(
            "assignments", "load", "reference/hw5", "--course", "dl", env=env
        )
        token = cli("users", "add", "alice", "--course", "dl", "--role", "student", env=env).strip()
        headers = {"Authorization": f"Bearer {token}"}
        answers = {"answers": {"q1_1": {"choices": [2]}, "q3_1": {"value": [6, 1, 2]}}}

        # An API without grading processes accepts and stores the submission ...
        with running([*CLI, "serve"], env | {"AUTOGRADE_LOCAL_WORKERS": "0"}, port, tmp_path / "a.log"):
            response = httpx2.post(
                f"http://127.0.0.1:{port}/api/v1/courses/dl/assignments/hw5/submissions",
                json=answers,
                headers=headers,
            )
            assert response.status_code == 202
            location = f"http://127.0.0.1:{port}{response.headers['location']}"
            time.sleep(1.0)
            assert httpx2.get(location, headers=headers).json()["status"] == "queued"
        # ... and after a restart with grading processes, the queued job is graded.
        with running([*CLI, "serve"], env | {"AUTOGRADE_LOCAL_WORKERS": "2"}, port, tmp_path / "b.log"):
            result = wait_until_graded(location, token)
        assert result["status"] == "graded"
        assert result["score"] == 2.5  # q1_1 net-correct 1/2 of 1 point, q3_1 2 points

        csv_text = cli("grades", "export", "--course", "dl", "--assignment", "hw5", env=env)
        header, row = csv_text.strip().splitlines()
        assert header.startswith("student,total,max_score,q1_1,q1_2")
        fields = row.split(",")
        assert fields[0] == "alice"
        assert fields[1:4] == ["2.5", "27", "0.5"]
    finally:
        drop()


def test_production_refuses_demo_secrets(tmp_path: Path) -> None:
    env = service_env(f"sqlite:///{tmp_path / 'p.db'}", free_port(), AUTOGRADE_ENV="production")
    done = subprocess.run(
        [*CLI, "db", "upgrade"], cwd=REPOSITORY_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "AUTOGRADE_SECRET_KEY" in done.stdout
    demo = subprocess.run(
        [*CLI, "demo"],
        cwd=REPOSITORY_ROOT,
        env=env | {"AUTOGRADE_SECRET_KEY": PRODUCTION_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert demo.returncode == 2
    assert "development" in demo.stdout


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"AUTOGRADE_SECRET_KEY": "short"}, "AUTOGRADE_SECRET_KEY"),
        ({"AUTOGRADE_SECRET_KEY": PRODUCTION_KEY, "AUTOGRADE_DEMO_TA_TOKEN": "x"}, "demo tokens"),
    ],
)
def test_settings_fail_fast_in_production(overrides: dict[str, str], problem: str) -> None:
    from pydantic import ValidationError

    from service.config import Settings

    with pytest.raises(ValidationError, match=problem):
        Settings(
            env="production", **{key.removeprefix("AUTOGRADE_").lower(): v for key, v in overrides.items()}
        )
    assert Settings(env="production", secret_key=PRODUCTION_KEY).env == "production"


def test_more_concurrent_requests_than_pooled_connections_do_not_deadlock(tmp_path: Path) -> None:
    """64 clients against a pool of 2 connections: every request is served, none waits out the
    pool's timeout (a request must never hold a connection while it waits for a worker thread)."""
    url, drop = create_scratch_database("postgres", tmp_path)
    port = free_port()
    try:
        env = service_env(url, port, AUTOGRADE_DB_POOL_SIZE="1", AUTOGRADE_LOCAL_WORKERS="0")
        cli("db", "upgrade", env=env)
        cli("assignments", "load", "reference/hw5", "--course", "dl", env=env)
        token = cli("users", "add", "bob", "--course", "dl", env=env).strip()
        with running([*CLI, "serve"], env, port, tmp_path / "c.log"):
            statuses: list[int] = []
            lock = threading.Lock()

            def client() -> None:
                with httpx2.Client(timeout=25) as session:
                    for _ in range(4):
                        response = session.post(
                            f"http://127.0.0.1:{port}/api/v1/courses/dl/assignments/hw5/submissions",
                            json={"answers": {"q1_2": {"choices": [3]}}},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        with lock:
                            statuses.append(response.status_code)

            threads = [threading.Thread(target=client) for _ in range(64)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        assert statuses == [202] * 256
    finally:
        drop()
