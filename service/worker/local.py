"""The local executor: grading processes on this machine, each polling the job table.

The database is the queue: a wake-up only shortens the wait after a commit, and a process that
polls finds every job even if a wake-up is lost or a process died holding a lease.

Wake-ups go through a semaphore, not a multiprocessing.Event: Event.set() waits for the sleepers
it wakes, and blocks for ever once one of them was killed while waiting (kill -9, the OOM killer).
Releasing a semaphore never waits. Stopping is a SIGTERM to each process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Sequence
from multiprocessing.synchronize import Semaphore as SemaphoreType

from sqlalchemy.exc import OperationalError

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.grading.runner import GradingRunner
from service.grading.service import cuda_available
from service.lms.delivery import run_delivery_loop
from service.logs import configure_logging
from service.lti.passback import LtiScoreSender
from service.models import Queue

logger = logging.getLogger(__name__)
SUPERVISE_SECONDS = 1.0


def worker_id(index: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


def claimable_queues(settings: Settings) -> tuple[Queue, ...]:
    """A worker without CUDA leaves gpu jobs for a GPU worker when AUTOGRADE_GPU_FALLBACK=wait."""
    if settings.gpu_fallback == "wait" and not cuda_available():
        return (Queue.CPU,)
    return tuple(Queue)


def run_worker_loop(settings: Settings, index: int, wake: SemaphoreType, stop: threading.Event) -> None:
    engine = make_engine(settings)
    session_factory = make_session_factory(engine)
    runner = GradingRunner(session_factory, settings, worker_id(index), claimable_queues(settings))
    # Webhooks and LTI scores go out from a thread of their own: a slow receiver never holds up
    # grading.
    deliveries = threading.Thread(
        target=run_delivery_loop,
        args=(session_factory, settings, worker_id(index), stop, LtiScoreSender),
        name="webhook-delivery",
        daemon=True,
    )
    deliveries.start()
    logger.info("grading worker %s started", worker_id(index))
    try:
        while not stop.is_set():
            while wake.acquire(block=False):  # wake-ups that piled up are one reason to look
                pass
            try:
                claimed = runner.run_once()
            except OperationalError:
                logger.exception("database unavailable; retrying")
                claimed = 0
            if claimed == 0 and not stop.is_set():
                wake.acquire(timeout=settings.poll_seconds)
    finally:
        stop.set()
        deliveries.join()
        engine.dispose()


def _process_main(settings_json: str, index: int, wake: SemaphoreType) -> None:
    stop = threading.Event()
    # The parent decides when to stop (SIGTERM): Ctrl-C in a terminal reaches every process of
    # the group, and a grade must not be cut off half-written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signal, _frame: stop.set())
    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings.log_format)
    run_worker_loop(settings, index, wake, stop)


class LocalExecutor:
    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        self._count = processes
        self._context = multiprocessing.get_context("spawn")
        self._wake = self._context.Semaphore(0)
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def _spawn(self, index: int) -> multiprocessing.process.BaseProcess:
        process = self._context.Process(
            target=_process_main,
            args=(self._settings.model_dump_json(), index, self._wake),
            name=f"autograde-grader-{index}",
            daemon=True,
        )
        process.start()
        return process

    def start(self) -> None:
        self._processes = [self._spawn(index) for index in range(self._count)]
        self._supervisor = threading.Thread(target=self._supervise, name="grader-supervisor", daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        """Replace a grading process that died (its jobs come back when their leases expire)."""
        while not self._stopping.wait(SUPERVISE_SECONDS):
            for index, process in enumerate(self._processes):
                if not process.is_alive() and not self._stopping.is_set():
                    logger.warning(
                        "grading process %s exited with %s; starting another", process.pid, process.exitcode
                    )
                    process.join(timeout=0)
                    self._processes[index] = self._spawn(index)

    @property
    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        return list(self._processes)

    def notify(self, job_ids: Sequence[int]) -> None:
        for _ in range(min(len(self._processes), len(job_ids))):
            self._wake.release()

    def broker_problem(self) -> str | None:
        return None  # the job table is the queue: no broker

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for process in self._processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: finish the batch in hand, then exit
        for process in self._processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        self._processes.clear()
