"""The sweeper: finds jobs whose message may be lost and sends them again.

It runs as a thread in every API process of the Celery executor; a Postgres advisory lock makes
one sweep at a time run across all of them. Each sweep, in one transaction:

1. ends as `error` the jobs whose lease expired after their last allowed attempt (with the reason);
2. puts back to `queued` the jobs whose lease expired with attempts left (their worker died);
3. per queue, compares the jobs `queued` in the database with the messages waiting in the broker.
   When the broker holds fewer, some messages were lost (a Redis restart, a failed send after the
   commit): it re-sends that many of the jobs queued longest (sent more than
   AUTOGRADE_SWEEP_QUEUED_AFTER_SECONDS ago), oldest first, and notes when it sent them.

Comparing counts keeps a long backlog from being re-sent again and again: while every queued job has
its message waiting, nothing is sent. A duplicate costs one claim that finds nothing to do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import transaction
from service.grading import repository
from service.models import Queue, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepReport:
    ran: bool
    gave_up: int = 0
    requeued: int = 0
    resent: int = 0


class Sweeper:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        send: Callable[[int, Queue], bool],
        waiting_messages: Callable[[Queue], int | None],
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._send = send
        self._waiting_messages = waiting_messages
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> SweepReport:
        with transaction(self._session_factory) as session:
            if not repository.try_sweeper_lock(session):
                return SweepReport(ran=False)
            now = utcnow()
            gave_up = repository.give_up_exhausted(session, now)
            requeued = repository.requeue_expired(session, now)
            resent = 0
            sent_before = now - timedelta(seconds=self._settings.sweep_queued_after_seconds)
            for queue, queued in sorted(repository.queued_counts(session).items()):
                waiting = self._waiting_messages(queue)
                if waiting is None or queued <= waiting:
                    continue
                candidates = repository.stale_queued_jobs(session, queue, sent_before, queued - waiting)
                sent = [job_id for job_id in candidates if self._send(job_id, queue)]
                repository.mark_sent(session, sent, now)
                resent += len(sent)
        report = SweepReport(ran=True, gave_up=gave_up, requeued=requeued, resent=resent)
        if gave_up or requeued or resent:
            logger.info("sweep: %s gave up, %s requeued, %s re-sent", gave_up, requeued, resent)
        return report

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.sweep_seconds):
            try:
                self.sweep_once()
            except Exception:
                logger.exception("sweep failed; trying again at the next interval")

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
