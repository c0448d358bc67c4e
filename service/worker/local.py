"""The local executor: grading processes on this machine, each polling the job table.

The database is the queue: a wake-up event only shortens the wait after a commit, and a process
that polls finds every job even if a wake-up is lost or a process died holding a lease.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Sequence
from multiprocessing.synchronize import Event as EventType

from sqlalchemy.exc import OperationalError

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.grading.runner import GradingRunner

logger = logging.getLogger(__name__)
QUEUES = ("cpu", "gpu")


def worker_id(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


def run_worker_loop(settings: Settings, index: int, wake: EventType | None, stop: EventType) -> None:
    engine = make_engine(settings)
    runner = GradingRunner(make_session_factory(engine), settings, worker_id(index), QUEUES)
    logger.info("grading worker %s started", worker_id(index))
    try:
        while not stop.is_set():
            if wake is not None:
                wake.clear()
            try:
                claimed = runner.run_once()
            except OperationalError:
                logger.exception("database unavailable; retrying")
                claimed = 0
            if claimed == 0:
                (wake or stop).wait(settings.poll_seconds)
    finally:
        engine.dispose()


def _process_main(settings_json: str, index: int, wake: EventType, stop: EventType) -> None:
    # The parent decides when to stop; Ctrl-C in a terminal must not kill a grade half-written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker_loop(Settings.model_validate_json(settings_json), index, wake, stop)


class LocalExecutor:
    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        self._count = processes
        self._context = multiprocessing.get_context("spawn")
        self._wake = self._context.Event()
        self._stop = self._context.Event()
        self._processes: list[multiprocessing.process.BaseProcess] = []

    def start(self) -> None:
        settings_json = self._settings.model_dump_json()
        for index in range(self._count):
            process = self._context.Process(
                target=_process_main,
                args=(settings_json, index, self._wake, self._stop),
                name=f"autograde-grader-{index}",
                daemon=True,
            )
            process.start()
            self._processes.append(process)

    def notify(self, job_ids: Sequence[int]) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        self._processes.clear()
