"""The grading loop every executor runs: claim jobs, grade each, store each under its lease.

No transaction stays open while a job grades: the inputs are read in one short transaction before,
the results written in another after (on SQLite an open transaction holds the write lock, and the
API would wait for the grading). A job whose results the database refuses ends `error` alone,
with the reason for staff; the jobs claimed beside it are stored.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from service.assignments.snapshots import VersionSnapshot, get_snapshot
from service.config import Settings
from service.db import transaction
from service.grading import repository
from service.grading.repository import ClaimedJob
from service.grading.service import QuestionOutcome, grade_submission
from service.models import Queue, utcnow

logger = logging.getLogger(__name__)

# A notebook grades for seconds to minutes; one per claim, after the light jobs claimed with it,
# so that answers claimed beside it never wait for it and other processes can take the next one.
HEAVY_JOBS_PER_CLAIM = 1
# The database does not answer: the caller retries later, and the jobs come back when their leases
# expire. Every other error while storing is about this job's data, and costs only this job.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
MAX_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class _JobInput:
    user_id: int
    answers: dict[str, Any]
    files: dict[str, bytes]
    snapshot: VersionSnapshot


@dataclass(frozen=True, slots=True)
class _Graded:
    job: ClaimedJob
    outcomes: list[QuestionOutcome]
    reference_version: str


class GradingRunner:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        worker_id: str,
        queues: Sequence[Queue],
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._worker_id = worker_id
        self._queues = list(queues)
        self._lease = timedelta(seconds=settings.lease_seconds)

    def _transaction(self) -> AbstractContextManager[Session]:
        return transaction(self._session_factory)

    def claim(self, limit: int | None = None) -> list[ClaimedJob]:
        """Up to `limit` light jobs, then (if the limit leaves room) HEAVY_JOBS_PER_CLAIM heavy ones."""
        with self._transaction() as session:
            return self._claim(session, limit)

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
        # The claim and the read of what grading needs share one short transaction (one round trip
        # pair fewer per batch); it ends before the first job grades.
        with self._transaction() as session:
            jobs = self._claim(session, limit)
            inputs = self._read_inputs(session, jobs)
        if jobs:
            with self._lease_keeper(jobs):
                self.grade_and_store(jobs, inputs)
        return len(jobs)

    def grade_and_store(
        self, jobs: Sequence[ClaimedJob], inputs: dict[uuid.UUID, _JobInput] | None = None
    ) -> None:
        """Light jobs first, stored together once graded; then each heavy job, stored as it ends."""
        if inputs is None:
            with transaction(self._session_factory, read_only=True) as session:
                inputs = self._read_inputs(session, jobs)
        light: list[_Graded] = []
        for job in jobs:
            if not job.heavy and (graded := self._grade(job, inputs)):
                light.append(graded)
        self._store(light)
        for job in jobs:
            if job.heavy and (graded := self._grade(job, inputs)):
                self._store([graded])

    def _claim(self, session: Session, limit: int | None) -> list[ClaimedJob]:
        limit = limit or self._settings.claim_batch
        now = utcnow()
        repository.give_up_exhausted(session, now)
        jobs = repository.claim_jobs(
            session, self._worker_id, self._queues, limit, now, self._lease, heavy=False
        )
        room = min(HEAVY_JOBS_PER_CLAIM, limit - len(jobs))
        if room > 0:
            jobs += repository.claim_jobs(
                session, self._worker_id, self._queues, room, now, self._lease, heavy=True
            )
        return jobs

    @staticmethod
    def _read_inputs(session: Session, jobs: Sequence[ClaimedJob]) -> dict[uuid.UUID, _JobInput]:
        """What grading needs, read inside a short transaction that ends before grading."""
        if not jobs:
            return {}
        ids = [job.submission_id for job in jobs]
        submissions = repository.load_submissions(session, ids)
        files = repository.load_files(session, ids)
        return {
            submission.id: _JobInput(
                submission.user_id,
                dict(submission.answers),
                files.get(submission.id, {}),
                get_snapshot(session, submission.assignment_version_id),
            )
            for submission in submissions.values()
        }

    def _grade(self, job: ClaimedJob, inputs: dict[uuid.UUID, _JobInput]) -> _Graded | None:
        loaded = inputs.get(job.submission_id)
        if loaded is None:  # deleted since the claim (its job row went with it)
            return None
        try:
            outcomes = grade_submission(
                self._settings, loaded.snapshot, loaded.user_id, loaded.answers, loaded.files
            )
        except Exception as error:  # a grader's own failure is one question's `error`; this is worse
            logger.exception("grading failed", extra=_ids(job))
            self._fail(job, f"grading failed: {_one_line(error)}")
            return None
        return _Graded(job, outcomes, loaded.snapshot.reference_version)

    def _store(self, graded: Sequence[_Graded]) -> None:
        """Store the jobs in one transaction; if the database refuses it, each job alone, so that
        the one it refuses ends `error` and the others are stored."""
        if not graded:
            return
        try:
            with self._transaction() as session:
                self._write(session, graded, utcnow())
        except DATABASE_UNAVAILABLE:
            raise
        except (SQLAlchemyError, ValueError, TypeError) as error:
            if len(graded) > 1:
                for one in graded:
                    self._store([one])
                return
            logger.exception("the database refused a job's results", extra=_ids(graded[0].job))
            self._fail(graded[0].job, f"the results could not be stored: {_one_line(error)}")

    def _fail(self, job: ClaimedJob, reason: str) -> None:
        with self._transaction() as session:
            repository.fail_job(session, job, utcnow(), reason)

    def _write(self, session: Session, graded: Sequence[_Graded], now: datetime) -> None:
        held = repository.finish_jobs(session, [item.job for item in graded], now)
        rows: list[dict[str, Any]] = []
        scores: dict[uuid.UUID, float] = {}
        for item in graded:
            if item.job.job_id not in held:
                logger.warning("job lost its lease; result dropped", extra=_ids(item.job))
                continue
            logger.info("job graded", extra=_ids(item.job))
            scores[item.job.submission_id] = round(sum(o.score for o in item.outcomes), 6)
            rows.extend(_result_row(item, outcome, now) for outcome in item.outcomes)
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


def _result_row(item: _Graded, outcome: QuestionOutcome, now: datetime) -> dict[str, Any]:
    return {
        "submission_id": item.job.submission_id,
        "question_id": outcome.question.id,
        "question_key": outcome.question.key,
        "verdict": outcome.result.verdict,
        "score": outcome.score,
        "max_score": outcome.question.points,
        "feedback": outcome.result.feedback,
        "details": outcome.result.details,
        "grader_kind": outcome.question.kind,
        "grader_version": outcome.question.grader.version,
        "reference_version": item.reference_version,
        "job_attempt": item.job.attempt,
        "graded_at": now,
    }


def _ids(job: ClaimedJob) -> dict[str, object]:
    return {"job_id": job.job_id, "submission_id": str(job.submission_id), "attempt": job.attempt}


def _one_line(error: BaseException) -> str:
    """An error for staff: the driver's own message (not the statement and its parameters), as one
    line of printable text."""
    cause = getattr(error, "orig", None) or error
    text = " ".join(f"{type(cause).__name__}: {cause}".split())
    return "".join(character for character in text if character.isprintable())[:MAX_REASON_CHARS]
