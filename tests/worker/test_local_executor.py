"""The local executor's processes: real processes, a real database, a killed worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.main import create_app
from service.migrations import upgrade_database
from service.models import GradingJob, JobStatus
from service.worker.local import LocalExecutor
from tests.factories import seed_courses


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_a_killed_grading_process_is_replaced_and_nothing_blocks(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}", poll_seconds=0.2, local_workers=1)
    engine = make_engine(settings)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        tokens = seed_courses(session, settings, tmp_path).tokens
    executor = LocalExecutor(settings, 1)
    app = create_app(settings, executor=executor)
    try:
        with TestClient(app) as client:
            (first,) = executor.processes
            assert wait_for(lambda: first.is_alive(), 30)
            time.sleep(1.0)  # let it reach its idle wait
            os.kill(first.pid or 0, signal.SIGKILL)

            # The API must not hang waking a dead process: each POST returns promptly.
            headers = {"Authorization": f"Bearer {tokens['student']}"}
            answers = {"answers": {"q1_2": {"choices": [3]}}}
            durations = []
            for _ in range(3):
                started = time.monotonic()
                response = client.post(
                    "/api/v1/courses/demo/assignments/hw5/submissions", json=answers, headers=headers
                )
                durations.append(time.monotonic() - started)
                assert response.status_code == 202
            assert max(durations) < 5

            # A new process takes the dead one's place and grades what was queued.
            assert wait_for(lambda: executor.processes[0].pid != first.pid, 10)

            def all_done() -> bool:
                with factory() as session:
                    done = session.scalar(
                        select(func.count())
                        .select_from(GradingJob)
                        .where(GradingJob.status == JobStatus.DONE)
                    )
                return done == 3

            assert wait_for(all_done, 60)
        # Leaving the client ran the lifespan's shutdown: every grading process is gone.
        assert executor.processes == []
    finally:
        engine.dispose()
