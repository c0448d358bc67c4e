"""Light answers never wait behind a notebook: a claim takes the light jobs and at most one heavy
job after them, and each job's results are stored as soon as it is graded."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.grading.runner import GradingRunner
from service.models import GradingJob, JobStatus
from tests.conftest import Api, scratch_service
from tests.graders.notebooks import SOLUTION, notebook_text

SLOW_NOTEBOOK = notebook_text(["import time\ntime.sleep(5)"]).encode()
CHOICE = {"answers": {"q1_2": {"choices": [3]}}}


def upload_notebook(client: TestClient, token: str, notebook: bytes) -> httpx2.Response:
    return client.post(
        "/api/v1/courses/demo/assignments/hw5/submissions",
        data={"answers": "{}"},
        files={"q4": ("hw5.ipynb", notebook)},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_a_claim_takes_the_light_jobs_and_one_notebook_after_them(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    for who in ("student", "student2"):
        assert upload_notebook(api.client, api.accounts.tokens[who], SOLUTION.read_bytes()).status_code == 202
        assert api.submit(who, CHOICE["answers"]).status_code == 202
    claimed = api.runner.claim()
    assert [job.heavy for job in claimed] == [False, False, True]
    # The second notebook is left for another grading process.
    other = GradingRunner(session_factory, api.runner._settings, "other-worker", ["cpu", "gpu"])
    assert [job.heavy for job in other.claim()] == [True]


def statuses(factory: sessionmaker[Session], ids: list[str]) -> list[JobStatus]:
    with factory() as session:
        rows = session.execute(
            select(GradingJob.submission_id, GradingJob.status).where(
                GradingJob.submission_id.in_([uuid.UUID(i) for i in ids])
            )
        ).all()
    by_id = {str(submission_id): status for submission_id, status in rows}
    return [by_id[i] for i in ids]


def test_choice_answers_claimed_beside_a_slow_notebook_are_stored_before_it_ends(
    backend: str, tmp_path: Path
) -> None:
    with scratch_service(backend, tmp_path) as service:
        factory, tokens, client = service.session_factory, service.tokens, service.client
        notebook = upload_notebook(client, tokens["student"], SLOW_NOTEBOOK).json()["id"]
        choices = [
            client.post(
                "/api/v1/courses/demo/assignments/hw5/submissions",
                json=CHOICE,
                headers={"Authorization": f"Bearer {tokens[who]}"},
            ).json()["id"]
            for who in ("student", "student2", "student")
        ]
        runner = GradingRunner(factory, service.settings, "one-process", ["cpu", "gpu"])
        claimed: list[int] = []
        grading = threading.Thread(target=lambda: claimed.append(runner.run_once()))
        started = time.monotonic()
        grading.start()
        while statuses(factory, choices) != [JobStatus.DONE] * 3 and time.monotonic() - started < 60:
            time.sleep(0.02)
        choices_seconds = time.monotonic() - started
        notebook_status = statuses(factory, [notebook])[0]
        grading.join(timeout=120)
        assert claimed == [4]  # all four in one claim
        assert statuses(factory, choices) == [JobStatus.DONE] * 3
        assert notebook_status is JobStatus.RUNNING, f"choices stored after {choices_seconds:.1f} s"
        assert choices_seconds < 3
        assert statuses(factory, [notebook]) == [JobStatus.DONE]
