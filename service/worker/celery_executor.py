"""The Celery executor: job ids travel through a broker (Redis) to `autograde worker` processes.

A message carries one job id and nothing else. The worker claims THAT job row with a lease, grades it
with the same GradingRunner as the local executor, and stores the result fenced by the attempt.
Each pool process also sends the outbound webhooks (service/lms/delivery.py) from a thread.
The broker is a fast path, not the truth: a lost message is re-sent by the sweeper, and a message
delivered twice (acks_late redelivery, the sweeper's re-send) claims nothing the second time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from queue import SimpleQueue
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_engine, make_session_factory
from service.grading import repository
from service.grading.runner import GradingRunner
from service.lms.delivery import run_delivery_loop
from service.lti.passback import LtiScoreSender
from service.models import Queue
from service.worker.sweeper import Sweeper

logger = logging.getLogger(__name__)

TASK_NAME = "autograde.grade_job"
# Redis calls that hang on a dead broker would hold an API request or the sweeper: bound them.
BROKER_TIMEOUTS = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0}
SEND_BATCH = 500
DATABASE_RETRY_SECONDS = 5
DATABASE_RETRIES = 20


class _WorkerProcessState:
    """The engine, runner and webhook delivery thread of one pool process, made after the fork:
    nothing the parent opened (connections, threads) is used by a child."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pid = -1
        self._lock = threading.Lock()  # the task thread and the delivery thread both ask
        self._session_factory: sessionmaker[Session] | None = None
        self._runner: GradingRunner | None = None
        self._deliveries: threading.Thread | None = None
        self._stop = threading.Event()

    def _here(self) -> sessionmaker[Session]:
        with self._lock:
            if self._session_factory is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._session_factory = make_session_factory(make_engine(self._settings))
                self._runner = None
            return self._session_factory

    def worker_id(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:celery"

    def runner(self) -> GradingRunner:
        session_factory = self._here()
        if self._runner is None:
            self._runner = GradingRunner(session_factory, self._settings, self.worker_id(), tuple(Queue))
        return self._runner

    def start_deliveries(self) -> None:
        """Each pool process sends webhooks and LTI scores from a thread of its own, as
        LocalExecutor's grading processes do: a slow receiver never holds up grading, and a pool
        process Celery replaces (killed, crashed) comes back with its thread."""
        self._stop = threading.Event()
        self._deliveries = threading.Thread(
            target=run_delivery_loop,
            args=(self._here(), self._settings, self.worker_id(), self._stop, LtiScoreSender),
            name="webhook-delivery",
            daemon=True,
        )
        self._deliveries.start()

    def stop_deliveries(self) -> None:
        """A warm shutdown: the attempt in flight is finished and stored (bounded by its timeout);
        a delivery cut off anyway is sent again by another worker once its lease expires."""
        self._stop.set()
        if self._deliveries is not None:
            self._deliveries.join(timeout=4 * self._settings.webhook_timeout_seconds + 5)
            self._deliveries = None


# The API only sends: a dead broker must cost a request milliseconds, not kombu's default connection
# retries (seconds); the sweeper sends again later. Workers keep the default and wait the broker out.
SENDER_CONNECTION_RETRIES = {"max_retries": 0, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}


def create_celery_app(settings: Settings, sender_only: bool = False) -> Celery:
    app = Celery("autograde", broker=settings.broker_url, set_as_current=False)
    transport_options: dict[str, float] = {
        "visibility_timeout": settings.visibility_timeout_seconds,
        **BROKER_TIMEOUTS,
        **(SENDER_CONNECTION_RETRIES if sender_only else {}),
    }
    app.conf.update(
        # Acknowledge after the task ran, and put the message back if its worker process dies,
        # so a kill -9 mid-job leaves the message for another worker.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # A worker process reserves one message at a time: a long job holds up no other job.
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=Queue.CPU.value,
        task_create_missing_queues=True,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a broker restart
        # A task cut off by a lost broker connection would only wait for its lease to expire; let it
        # finish and store its result (fenced) instead.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    state = _WorkerProcessState(settings)
    if not sender_only:
        # Sent in each prefork pool process right after it starts, and as it exits (the CLI
        # always runs the prefork pool). Celery's signals are process-wide: the uid ties these
        # receivers to this app and keeps its state alive (weak=False).
        worker_process_init.connect(
            lambda **_: state.start_deliveries(), weak=False, dispatch_uid=f"deliveries-start-{id(app)}"
        )
        worker_process_shutdown.connect(
            lambda **_: state.stop_deliveries(), weak=False, dispatch_uid=f"deliveries-stop-{id(app)}"
        )

    @app.task(name=TASK_NAME, bind=True, max_retries=DATABASE_RETRIES)  # type: ignore[untyped-decorator]
    def grade_job(task: Any, job_id: int) -> None:
        try:
            state.runner().run_job(int(job_id))
        except OperationalError as error:
            # The database is away: try again shortly. If even that message is lost, the sweeper
            # finds the job still queued (or its lease expired) and sends it again.
            logger.warning("database unavailable; retrying job", extra={"job_id": job_id})
            raise task.retry(countdown=DATABASE_RETRY_SECONDS, exc=error) from error

    return app


def broker_reachable(settings: Settings) -> bool:
    """The broker answers a PING within two seconds (one try: readiness must answer quickly)."""
    client = redis.Redis.from_url(
        settings.broker_url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class CeleryExecutor:
    """Hands committed job ids to a sender thread that publishes one message per job to its queue;
    runs the sweeper while the API runs.

    The request that committed the jobs never waits on the broker: notify() only puts the ids in an
    in-process outbox. If the broker is down, or the process dies before sending, the jobs stay
    `queued` in the database and the sweeper sends them.
    """

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session]) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self.app = create_celery_app(settings, sender_only=True)
        self.sweeper = Sweeper(session_factory, settings, self.send, self.waiting_messages)
        self._outbox: SimpleQueue[int | None] = SimpleQueue()
        self._sender: threading.Thread | None = None

    def start(self) -> None:
        self._sender = threading.Thread(target=self._send_loop, name="job-sender", daemon=True)
        self._sender.start()
        self.sweeper.start()

    def stop(self) -> None:
        self.sweeper.stop()
        if self._sender is not None:
            self._outbox.put(None)
            self._sender.join(timeout=30)
            self._sender = None
        self.app.close()

    def notify(self, job_ids: Sequence[int]) -> None:
        for job_id in job_ids:
            self._outbox.put(job_id)

    def broker_problem(self) -> str | None:
        return None if broker_reachable(self._settings) else "the broker does not answer"

    def _send_loop(self) -> None:
        while True:
            batch = [self._outbox.get()]
            while not self._outbox.empty() and len(batch) < SEND_BATCH:
                batch.append(self._outbox.get())
            job_ids = [job_id for job_id in batch if job_id is not None]
            if job_ids:
                self.send_jobs(job_ids)
            if None in batch:
                return

    def send_jobs(self, job_ids: Sequence[int]) -> int:
        """Send committed jobs to their queues; how many were sent."""
        try:
            with self._session_factory() as session:
                queues = repository.queues_of(session, job_ids)
        except SQLAlchemyError:
            logger.warning("could not read the jobs' queues; the sweeper will send them")
            return 0
        return sum(self.send(job_id, queues[job_id]) for job_id in job_ids if job_id in queues)

    def send(self, job_id: int, queue: Queue) -> bool:
        """Publish one job id; False if the broker cannot be reached (the sweeper re-sends later)."""
        try:
            self.app.send_task(TASK_NAME, args=[job_id], queue=queue.value, retry=False)
        except Exception:
            logger.warning("could not send job to the broker", extra={"job_id": job_id, "queue": queue.value})
            return False
        return True

    def waiting_messages(self, queue: Queue) -> int | None:
        """Messages waiting in the broker's queue (0 if the queue does not exist); None if unknown."""
        try:
            with self.app.connection_for_read() as connection:
                channel = connection.default_channel
                try:
                    return int(channel.queue_declare(queue=queue.value, passive=True).message_count)
                except connection.channel_errors:
                    return 0
        except Exception:
            return None
