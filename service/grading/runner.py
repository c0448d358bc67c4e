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
from service.lms.schemas import WebhookEvent
from service.lms.service import record_submission_events
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
    # The version the job grades against: the submission's own, or a regrade's.
    snapshot: VersionSnapshot
    # A regrade's job: who started it (the actor of its audit entries).
    regrade_requester: int | None = None


@dataclass(frozen=True, slots=True)
class _Graded:
    job: ClaimedJob
    outcomes: list[QuestionOutcome]
    loaded: _JobInput

    @property
    def reference_version(self) -> str:
        return self.loaded.snapshot.reference_version


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

    def grade_and_store(self, jobs: Sequence[ClaimedJob], inputs: dict[int, _JobInput] | None = None) -> None:
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
    def _read_inputs(session: Session, jobs: Sequence[ClaimedJob]) -> dict[int, _JobInput]:
        """What grading needs, per job, read inside a short transaction that ends before grading.
        Keyed by job: a submission's first grading and a regrade of it may be claimed together."""
        if not jobs:
            return {}
        ids = list({job.submission_id for job in jobs})
        submissions = repository.load_submissions(session, ids)
        files = repository.load_files(session, ids)
        requesters = repository.requesters_of(session, [job.regrade_id for job in jobs if job.regrade_id])
        inputs: dict[int, _JobInput] = {}
        for job in jobs:
            submission = submissions.get(job.submission_id)
            if submission is None:  # deleted since the claim (its job row went with it)
                continue
            inputs[job.job_id] = _JobInput(
                submission.user_id,
                dict(submission.answers),
                files.get(submission.id, {}),
                get_snapshot(session, job.assignment_version_id or submission.assignment_version_id),
                requesters.get(job.regrade_id) if job.regrade_id else None,
            )
        return inputs

    def _grade(self, job: ClaimedJob, inputs: dict[int, _JobInput]) -> _Graded | None:
        loaded = inputs.get(job.job_id)
        if loaded is None:
            return None
        try:
            outcomes = grade_submission(
                self._settings,
                loaded.snapshot,
                loaded.user_id,
                loaded.answers,
                loaded.files,
                only=job.question_key,
            )
        except Exception as error:  # a grader's own failure is one question's `error`; this is worse
            logger.exception("grading failed", extra=_ids(job))
            self._fail(job, f"grading failed: {_one_line(error)}")
            return None
        return _Graded(job, outcomes, loaded)

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
            now = utcnow()
            repository.fail_job(session, job, now, reason)
            if job.regrade_id is not None:
                repository.close_finished_regrades(session, [job.regrade_id], now)

    def _write(self, session: Session, graded: Sequence[_Graded], now: datetime) -> None:
        held = repository.finish_jobs(session, [item.job for item in graded], now)
        kept: list[_Graded] = []
        for item in graded:
            if item.job.job_id not in held:
                logger.warning("job lost its lease; result dropped", extra=_ids(item.job))
                continue
            logger.info("job graded", extra=_ids(item.job))
            kept.append(item)
        submission_ids = sorted({item.job.submission_id for item in kept})
        repository.lock_submissions(session, submission_ids)
        revisions = _Revisions(repository.stored_results(session, submission_ids))
        # Oldest revision first: of two revisions claimed together, the newer ends current.
        for item in sorted(kept, key=lambda item: item.job.revision):
            for outcome in item.outcomes:
                revisions.add(item, outcome, now)
        repository.retire_results(session, revisions.retired)
        repository.store_results(session, revisions.rows)
        repository.append_audit(
            session, revisions.audit(repository.manual_scores(session, revisions.regraded_submissions), now)
        )
        # The total is recomputed from the current results (a person's grade still wins): a
        # regrade of one question, or a first grading landing after a regrade, leaves the rest.
        repository.set_submission_scores(session, repository.raw_totals(session, submission_ids), now)
        repository.set_max_scores(
            session,
            {
                item.job.submission_id: item.loaded.snapshot.max_score
                for item in kept
                if item.job.regrade_id is not None
            },
        )
        repository.close_finished_regrades(
            session, list({item.job.regrade_id for item in kept if item.job.regrade_id is not None}), now
        )
        # The outbox, in this transaction: the events commit with the scores or not at all. A
        # first grading is `submission.graded`; a regrade that changed a score, `grade.changed`.
        # Recorded per batch: what decides whether each is due is read once, not per submission.
        first = sorted({item.job.submission_id for item in kept if item.job.regrade_id is None})
        record_submission_events(session, first, WebhookEvent.SUBMISSION_GRADED, now)
        changed = sorted(set(revisions.regraded_submissions) - set(first))
        record_submission_events(session, changed, WebhookEvent.GRADE_CHANGED, now)

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


@dataclass(frozen=True, slots=True)
class _Replaced:
    """A regrade's result that took the place of an older one: the audit entry it makes."""

    item: _Graded
    outcome: QuestionOutcome
    old_score: float
    old_verdict: str


class _Revisions:
    """The result rows a batch writes, as revisions: a row is current unless a newer revision of
    its question is stored, and the row it replaces stays, no longer current. Nothing is updated
    but `is_current`, nothing deleted."""

    def __init__(self, stored: Sequence[repository.StoredResult]) -> None:
        self.rows: list[dict[str, Any]] = []
        self.retired: list[int] = []
        self._replaced: list[_Replaced] = []
        self._newest: dict[tuple[uuid.UUID, str], int] = {}
        # The current row of each question: a stored one, or the index of a row of this batch.
        self._current: dict[tuple[uuid.UUID, str], repository.StoredResult | int] = {}
        for row in stored:
            key = (row.submission_id, row.question_key)
            self._newest[key] = max(self._newest.get(key, 0), row.revision)
            if row.is_current:
                self._current[key] = row

    def add(self, item: _Graded, outcome: QuestionOutcome, now: datetime) -> None:
        key = (item.job.submission_id, outcome.question.key)
        row = _result_row(item, outcome, now)
        if self._newest.get(key, 0) > item.job.revision:  # a newer regrade landed first
            self.rows.append(row | {"is_current": False})
            return
        previous = self._current.get(key)
        old: tuple[float, str] | None = None
        if isinstance(previous, int):
            self.rows[previous]["is_current"] = False
            old = (self.rows[previous]["score"], str(self.rows[previous]["verdict"]))
        elif previous is not None:
            self.retired.append(previous.id)
            old = (previous.score, str(previous.verdict))
        if old is not None and item.job.regrade_id is not None and old[0] != outcome.score:
            self._replaced.append(_Replaced(item, outcome, *old))
        self._newest[key] = item.job.revision
        self._current[key] = len(self.rows)
        self.rows.append(row | {"is_current": True})

    @property
    def regraded_submissions(self) -> list[uuid.UUID]:
        return list({replaced.item.job.submission_id for replaced in self._replaced})

    def audit(self, manual: dict[tuple[uuid.UUID, str], float], now: datetime) -> list[dict[str, Any]]:
        """An entry per automatic score a regrade changed, by the TA who started it; a person's
        grade that still governs the answer is named in the details."""
        entries = []
        for replaced in self._replaced:
            job, loaded = replaced.item.job, replaced.item.loaded
            kept_manual = manual.get((job.submission_id, replaced.outcome.question.key))
            entries.append(
                {
                    "course_id": loaded.snapshot.course_id,
                    "submission_id": job.submission_id,
                    "question_key": replaced.outcome.question.key,
                    "actor_user_id": loaded.regrade_requester,
                    "action": "regrade",
                    "old_score": replaced.old_score,
                    "new_score": replaced.outcome.score,
                    "reason": "",
                    "details": {
                        "regrade_id": str(job.regrade_id),
                        "revision": job.revision,
                        "old_verdict": replaced.old_verdict,
                        "new_verdict": str(replaced.outcome.result.verdict),
                        "manual_score": kept_manual,
                    },
                    "created_at": now,
                }
            )
        return entries


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
        # What a student sees until hidden checks are released (service/submissions/hidden_checks.py).
        "public_view": None if outcome.result.public_view is None else outcome.result.public_view.as_json(),
        "grader_kind": outcome.question.kind,
        "grader_version": outcome.question.grader.version,
        "reference_version": item.reference_version,
        "job_attempt": item.job.attempt,
        "graded_at": now,
        "revision": item.job.revision,
    }


def _ids(job: ClaimedJob) -> dict[str, object]:
    return {"job_id": job.job_id, "submission_id": str(job.submission_id), "attempt": job.attempt}


def _one_line(error: BaseException) -> str:
    """An error for staff: the driver's own message (not the statement and its parameters), as one
    line of printable text."""
    cause = getattr(error, "orig", None) or error
    text = " ".join(f"{type(cause).__name__}: {cause}".split())
    return "".join(character for character in text if character.isprintable())[:MAX_REASON_CHARS]
