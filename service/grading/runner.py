"""The grading loop every executor runs: claim a batch of jobs, grade, store under the lease."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.assignments.snapshots import get_snapshot
from service.config import Settings
from service.grading import repository
from service.grading.repository import ClaimedJob
from service.grading.service import QuestionOutcome, grade_submission
from service.models import utcnow

logger = logging.getLogger(__name__)


class GradingRunner:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        worker_id: str,
        queues: Sequence[str],
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._worker_id = worker_id
        self._queues = list(queues)
        self._lease = timedelta(seconds=settings.lease_seconds)

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._session_factory() as session, session.begin():
            yield session

    def claim(self, limit: int | None = None) -> list[ClaimedJob]:
        with self._transaction() as session:
            now = utcnow()
            repository.give_up_exhausted(session, now)
            return repository.claim_jobs(
                session, self._worker_id, self._queues, limit or self._settings.claim_batch, now, self._lease
            )

    def claim_one(self, job_id: int) -> ClaimedJob | None:
        with self._transaction() as session:
            now = utcnow()
            repository.give_up_exhausted(session, now)
            return repository.claim_job(session, job_id, self._worker_id, now, self._lease)

    def run_job(self, job_id: int) -> bool:
        """Claim the one job a message names, grade and store it; False if it was not claimable
        (done already, or held under a live lease by another worker: a duplicate message)."""
        job = self.claim_one(job_id)
        if job is None:
            logger.info("job not claimable; message dropped", extra={"job_id": job_id})
            return False
        with self._lease_keeper([job]):
            self.grade_and_store([job])
        return True

    def run_once(self, limit: int | None = None) -> int:
        """Claim and grade one batch; returns how many jobs it claimed."""
        jobs = self.claim(limit)
        if jobs:
            with self._lease_keeper(jobs):
                self.grade_and_store(jobs)
        return len(jobs)

    def grade_and_store(self, jobs: Sequence[ClaimedJob]) -> None:
        graded: list[tuple[ClaimedJob, list[QuestionOutcome], str]] = []
        with self._session_factory() as session:
            submissions = repository.load_submissions(session, [job.submission_id for job in jobs])
            files = repository.load_files(session, [job.submission_id for job in jobs])
            for job in jobs:
                submission = submissions[job.submission_id]
                snapshot = get_snapshot(session, submission.assignment_version_id)
                outcomes = grade_submission(
                    self._settings,
                    snapshot,
                    submission.user_id,
                    submission.answers,
                    files.get(job.submission_id, {}),
                )
                graded.append((job, outcomes, snapshot.reference_version))
            session.rollback()
        with self._transaction() as session:
            now = utcnow()
            held = repository.finish_jobs(session, [job for job, *_ in graded], now)
            rows: list[dict[str, Any]] = []
            scores: dict[uuid.UUID, float] = {}
            for job, outcomes, reference_version in graded:
                ids = {"job_id": job.job_id, "submission_id": str(job.submission_id), "attempt": job.attempt}
                if job.job_id not in held:
                    logger.warning("job lost its lease; result dropped", extra=ids)
                    continue
                logger.info("job graded", extra=ids)
                scores[job.submission_id] = round(sum(o.score for o in outcomes), 6)
                rows.extend(
                    {
                        "submission_id": job.submission_id,
                        "question_id": outcome.question.id,
                        "question_key": outcome.question.key,
                        "verdict": outcome.result.verdict.value,
                        "score": outcome.score,
                        "max_score": outcome.question.points,
                        "feedback": outcome.result.feedback,
                        "details": outcome.result.details,
                        "grader_kind": outcome.question.kind,
                        "grader_version": outcome.question.grader.version,
                        "reference_version": reference_version,
                        "job_attempt": job.attempt,
                        "graded_at": now,
                    }
                    for outcome in outcomes
                )
            repository.store_results(session, rows)
            repository.set_submission_scores(session, scores, now)

    @contextmanager
    def _lease_keeper(self, jobs: Sequence[ClaimedJob]) -> Iterator[None]:
        """Extend the leases while a batch grades, so a slow batch is not taken over."""
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(self._settings.heartbeat_seconds):
                try:
                    with self._transaction() as session:
                        repository.extend_leases(session, jobs, utcnow(), self._lease)
                except Exception:
                    logger.exception("could not extend leases")

        thread = threading.Thread(target=keep, name="lease-keeper", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
