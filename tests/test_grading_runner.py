"""The grading loop: leases, fencing by attempt, retries, and grader failures."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from graders.tensor import TensorGrader
from service.db import make_engine, make_session_factory
from service.grading.runner import GradingRunner
from service.models import GradingJob, JobStatus, QuestionResult, Submission, utcnow
from tests.conftest import Api, scratch_service

ANSWERS = {"q1_2": {"choices": [3]}, "q3_1": {"value": [6, 1, 2]}}


def job_row(session_factory: sessionmaker[Session], submission_id: str) -> GradingJob:
    with session_factory() as session:
        return session.scalars(
            select(GradingJob).where(GradingJob.submission_id == uuid.UUID(submission_id))
        ).one()


def expire_leases(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, session.begin():
        session.execute(
            update(GradingJob)
            .where(GradingJob.status == JobStatus.RUNNING)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_a_held_lease_keeps_other_workers_off(api: Api, session_factory: sessionmaker[Session]) -> None:
    api.submit("student", ANSWERS)
    other = GradingRunner(session_factory, api.runner._settings, "other-worker", ["cpu"])
    claimed = api.runner.claim()
    assert len(claimed) == 1
    assert claimed[0].attempt == 1
    assert other.claim() == []


def test_only_the_current_attempt_writes_results(api: Api, session_factory: sessionmaker[Session]) -> None:
    submission_id = api.submit("student", ANSWERS).json()["id"]
    stale = api.runner.claim()
    expire_leases(session_factory)  # the first worker stalls past its lease ...
    successor = GradingRunner(session_factory, api.runner._settings, "successor", ["cpu"])
    assert successor.run_once() == 1  # ... a second one takes over as attempt 2 and finishes
    api.runner.grade_and_store(stale)  # the stale attempt's late write is dropped (fenced)

    job = job_row(session_factory, submission_id)
    assert (job.status, job.attempt, job.lease_owner) == (JobStatus.DONE, 2, "successor")
    with session_factory() as session:
        results = session.scalars(
            select(QuestionResult).where(QuestionResult.submission_id == uuid.UUID(submission_id))
        ).all()
    assert sorted(r.question_key for r in results) == ["q1_2", "q3_1"]
    assert {r.job_attempt for r in results} == {2}
    view = api.get("student", f"/api/v1/submissions/{submission_id}").json()
    assert (view["status"], view["score"]) == ("graded", 3.0)


def test_a_job_that_keeps_dying_ends_as_an_error(api: Api, session_factory: sessionmaker[Session]) -> None:
    submission_id = api.submit("student", ANSWERS).json()["id"]
    for attempt in range(1, 4):  # max_attempts defaults to 3
        claimed = api.runner.claim()
        assert [job.attempt for job in claimed] == [attempt]
        expire_leases(session_factory)  # the worker "died" holding the lease
    assert api.runner.claim() == []
    job = job_row(session_factory, submission_id)
    assert job.status is JobStatus.ERROR
    assert "gave up" in (job.last_error or "")
    assert api.get("student", f"/api/v1/submissions/{submission_id}").json()["status"] == "error"
    staff_view = api.get("ta", f"/api/v1/submissions/{submission_id}").json()
    assert "gave up" in staff_view["error"]
    assert api.get("student", f"/api/v1/submissions/{submission_id}").json()["error"] is None


def test_a_failing_grader_costs_one_question_not_the_job(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: TensorGrader, *args: Any) -> None:
        raise RuntimeError("reference exploded")

    monkeypatch.setattr(TensorGrader, "grade", broken)
    submission_id = api.submit("student", ANSWERS).json()["id"]
    assert api.grade_pending() == 1
    view = api.get("student", f"/api/v1/submissions/{submission_id}").json()
    assert view["status"] == "graded"
    assert view["questions"]["q1_2"]["verdict"] == "correct"
    assert view["questions"]["q3_1"]["verdict"] == "error"
    assert "reference exploded" not in view["questions"]["q3_1"]["feedback"]
    staff = api.get("ta", f"/api/v1/submissions/{submission_id}").json()
    assert "reference exploded" in staff["questions"]["q3_1"]["details"]["exception"]


def test_concurrent_workers_grade_each_job_exactly_once(backend: str, tmp_path: Path) -> None:
    """Real connections, real threads: two runners drain 120 jobs with no job graded twice."""
    with scratch_service(backend, tmp_path, claim_batch=8) as service:
        settings, factory, tokens = service.settings, service.session_factory, service.tokens
        for index in range(120):
            response = service.client.post(
                "/api/v1/courses/demo/assignments/hw5/submissions",
                json={"answers": ANSWERS},
                headers={"Authorization": f"Bearer {tokens['student' if index % 2 else 'student2']}"},
            )
            assert response.status_code == 202

        def drain(name: str) -> None:
            runner_engine = make_engine(settings)
            runner = GradingRunner(make_session_factory(runner_engine), settings, name, ["cpu"])
            while runner.run_once():
                pass
            runner_engine.dispose()

        threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        with factory() as session:
            jobs = session.execute(select(GradingJob.status, GradingJob.attempt)).all()
            assert len(jobs) == 120
            assert {(status, attempt) for status, attempt in jobs} == {(JobStatus.DONE, 1)}
            results = session.scalar(select(func.count()).select_from(QuestionResult))
            assert results == 240
            graded = session.scalar(
                select(func.count()).select_from(Submission).where(Submission.score == 3.0)
            )
            assert graded == 120
