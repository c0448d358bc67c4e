"""On SQLite (the embedded default) the API keeps answering while a notebook grades: no transaction
stays open across grading, and reads do not take the write lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.main import create_app
from service.migrations import upgrade_database
from service.worker.executor import NullExecutor
from service.worker.local import LocalExecutor
from tests.factories import seed_courses
from tests.graders.notebooks import notebook_text
from tests.test_head_of_line import upload_notebook

SLOW_NOTEBOOK_SECONDS = 8


def job_status(database: Path) -> str:
    # A plain sqlite3 reader: it takes no lock, so polling cannot itself wait for the grading.
    with sqlite3.connect(database) as connection:
        return str(connection.execute("SELECT status FROM grading_jobs").fetchone()[0])


def prepared(tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    database = tmp_path / "autograde.db"
    settings = Settings(database_url=f"sqlite:///{database}", poll_seconds=0.2, local_workers=1)
    engine = make_engine(settings)
    upgrade_database(engine)
    with make_session_factory(engine)() as session:
        tokens = seed_courses(session, settings, tmp_path).tokens
    engine.dispose()
    return settings, tokens


def test_a_get_answers_while_a_grading_process_grades_a_notebook(tmp_path: Path) -> None:
    settings, tokens = prepared(tmp_path)
    database = tmp_path / "autograde.db"
    slow = notebook_text([f"import time\ntime.sleep({SLOW_NOTEBOOK_SECONDS})"]).encode()
    executor = LocalExecutor(settings, 1)
    with TestClient(create_app(settings, executor=executor)) as client:
        submitted = upload_notebook(client, tokens["student"], slow)
        assert submitted.status_code == 202
        deadline = time.monotonic() + 60
        while job_status(database) != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the grading process has loaded the notebook and is running it
        started = time.monotonic()
        response = client.get(
            submitted.headers["location"], headers={"Authorization": f"Bearer {tokens['ta']}"}
        )
        seconds = time.monotonic() - started
        assert response.status_code == 200
        assert response.json()["status"] == "running"
        assert seconds < 1.5, f"the GET waited {seconds:.1f} s for the grading process"
        assert job_status(database) == "running"  # it answered during the grading, not after


def test_a_read_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    settings, tokens = prepared(tmp_path)
    with TestClient(create_app(settings, executor=NullExecutor())) as client:
        headers = {"Authorization": f"Bearer {tokens['student']}"}
        location = client.post(
            "/api/v1/courses/demo/assignments/hw5/submissions",
            json={"answers": {"q1_2": {"choices": [3]}}},
            headers=headers,
        ).headers["location"]
        writer = sqlite3.connect(tmp_path / "autograde.db", isolation_level=None, check_same_thread=False)
        writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock for 3 s
        release = threading.Timer(3.0, writer.rollback)
        release.start()
        try:
            started = time.monotonic()
            response = client.get(location, headers=headers)
            seconds = time.monotonic() - started
        finally:
            release.join()
            writer.close()
        assert response.status_code == 200
        assert seconds < 1.0, f"the GET waited {seconds:.1f} s for the write lock"
