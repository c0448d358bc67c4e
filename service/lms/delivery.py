"""The outbox's delivery loop the workers run: claim due deliveries under a lease, send each, store
the outcome fenced by the lease. Two kinds share the machinery (LeasedDeliverer): webhooks, signed
with the `standardwebhooks` library and POSTed with httpx, and LTI score passbacks, sent by a
ScoreSender the worker hands in (service/lti/passback.py).

2xx is delivered; anything else (another status, a refused connection, a timeout) is retried on
RETRY_SCHEDULE, then the delivery is dead (staff may redeliver). Nothing here runs on the request
path, and no transaction stays open while a request is in flight (on SQLite an open write
transaction would stall the API). The batch is sent concurrently, each attempt under its own
timeout: a slow receiver delays only its own deliveries."""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import httpx
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from service.config import Settings
from service.db import transaction
from service.lms import repository, secrets_box
from service.lms.repository import ClaimedDelivery
from service.lms.repository import ClaimedPassback as ClaimedPassback  # for senders (ScoreSender)
from service.lms.service import webhook_id
from service.models import utcnow
from service.models.lms import DeliveryStatus

logger = logging.getLogger(__name__)

# Seconds after the 1st, 2nd, ... failed attempt; after the last, the delivery is dead.
RETRY_SCHEDULE = (10.0, 60.0, 300.0, 1800.0, 7200.0, 28800.0)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
MAX_ERROR_CHARS = 500
USER_AGENT = "autograde-webhooks/1"


def retry_delay(settings: Settings, failed_attempts: int) -> timedelta | None:
    """How long after this failure to try again, or None when the schedule is spent (dead)."""
    if failed_attempts > len(RETRY_SCHEDULE):
        return None
    return timedelta(seconds=RETRY_SCHEDULE[failed_attempts - 1] * settings.webhook_retry_scale)


class _Attempt(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def attempt(self) -> int: ...


Claimed = TypeVar("Claimed", bound=_Attempt)


class LeasedDeliverer(ABC, Generic[Claimed]):
    """The loop's machinery for one kind of delivery: claim a batch under a lease (one short
    transaction), send each concurrently with no transaction open, store each outcome fenced by the
    lease (2xx delivered, else the retry schedule, then dead)."""

    kind = "delivery"

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        worker_id: str,
        lease: timedelta,
    ) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._worker_id = worker_id
        # Longer than any attempt can take, so a live attempt is never taken over; a dead
        # worker's delivery comes back when it expires.
        self._lease = lease
        self._pool = ThreadPoolExecutor(max_workers=settings.webhook_batch, thread_name_prefix=self.kind)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    @abstractmethod
    def _claim(self, session: Session, now: datetime) -> list[Claimed]: ...

    @abstractmethod
    def _send(self, claimed: Claimed) -> tuple[int | None, str | None]: ...

    @abstractmethod
    def _finish(self, session: Session, claimed: Claimed, values: dict[str, Any]) -> bool: ...

    def run_once(self) -> int:
        """Claim one batch of due deliveries, send them, store the outcomes; how many it claimed."""
        with transaction(self._session_factory) as session:
            claimed = self._claim(session, utcnow())
        if not claimed:
            return 0
        outcomes = list(self._pool.map(self._send, claimed))
        with transaction(self._session_factory) as session:
            now = utcnow()
            for delivery, (status_code, error) in zip(claimed, outcomes, strict=True):
                self._store(session, delivery, status_code, error, now)
        return len(claimed)

    def run_until_idle(self, max_batches: int = 1000) -> int:
        """Batches until none is due (tests; a worker loops with run_once and a pause)."""
        total = 0
        for _ in range(max_batches):
            claimed = self.run_once()
            total += claimed
            if claimed == 0:
                break
        return total

    def _store(
        self,
        session: Session,
        delivery: Claimed,
        status_code: int | None,
        error: str | None,
        now: datetime,
    ) -> None:
        values: dict[str, Any] = {"last_status_code": status_code, "last_error": error}
        if error is None:
            values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
        elif (delay := retry_delay(self._settings, delivery.attempt)) is None:
            values |= {"status": DeliveryStatus.DEAD}
            logger.warning("%s %s is dead after %s attempts", self.kind, delivery.id, delivery.attempt)
        else:
            values |= {"next_attempt_at": now + delay}
        if not self._finish(session, delivery, values):
            logger.info("%s %s was taken over or reset; outcome dropped", self.kind, delivery.id)


class WebhookDeliverer(LeasedDeliverer[ClaimedDelivery]):
    kind = "webhook"

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, worker_id: str) -> None:
        super().__init__(
            session_factory,
            settings,
            worker_id,
            # connect + write + read, each under the timeout
            timedelta(seconds=4 * settings.webhook_timeout_seconds + 10),
        )
        timeout = httpx.Timeout(settings.webhook_timeout_seconds)
        # No redirects: a 3xx is a failed attempt, not a hop to wherever the receiver points.
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"user-agent": USER_AGENT}
        )

    def close(self) -> None:
        super().close()
        self._client.close()

    def _claim(self, session: Session, now: datetime) -> list[ClaimedDelivery]:
        return repository.claim_deliveries(
            session, self._worker_id, now, self._lease, self._settings.webhook_batch
        )

    def _finish(self, session: Session, claimed: ClaimedDelivery, values: dict[str, Any]) -> bool:
        return repository.finish_delivery(session, claimed, self._worker_id, values)

    def _send(self, delivery: ClaimedDelivery) -> tuple[int | None, str | None]:
        try:
            secret = secrets_box.decrypt(self._settings, delivery.secret_encrypted)
            body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
            message_id = webhook_id(delivery.subscription_id, delivery.event_id)
            # A fresh timestamp per attempt: receivers refuse one older than their tolerance (5 min).
            timestamp = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(timestamp.timestamp())),
                "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
            }
            response = self._client.post(delivery.url, content=body.encode(), headers=headers)
        except httpx.HTTPError as error:
            return None, one_line(f"{type(error).__name__}: {error}")
        except Exception as error:  # an unreadable secret, a URL httpx refuses: this delivery only
            logger.exception("webhook delivery %s could not be sent", delivery.id)
            return None, one_line(f"{type(error).__name__}: {error}")
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"the receiver answered {response.status_code}"


class ScoreSender(Protocol):
    """Sends one claimed score to the LMS (LTI Assignment and Grade Services). It lives with LTI
    (service/lti/passback.py), which sits above this package: the worker hands it in."""

    def send(self, passback: ClaimedPassback) -> tuple[int | None, str | None]:
        """(the platform's last status code, an error or None when the score was taken)."""
        ...

    def close(self) -> None: ...


ScoreSenderFactory = Callable[[sessionmaker[Session], Settings], ScoreSender]


class PassbackDeliverer(LeasedDeliverer[ClaimedPassback]):
    kind = "score passback"

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: Settings,
        worker_id: str,
        sender: ScoreSender,
    ) -> None:
        # An attempt is up to four requests (token, find and create the line item, the score).
        super().__init__(
            session_factory,
            settings,
            worker_id,
            timedelta(seconds=16 * settings.lti_http_timeout_seconds + 10),
        )
        self._sender = sender

    def close(self) -> None:
        super().close()
        self._sender.close()

    def _claim(self, session: Session, now: datetime) -> list[ClaimedPassback]:
        return repository.claim_passbacks(
            session, self._worker_id, now, self._lease, self._settings.webhook_batch
        )

    def _finish(self, session: Session, claimed: ClaimedPassback, values: dict[str, Any]) -> bool:
        return repository.finish_passback(session, claimed, self._worker_id, values)

    def _send(self, claimed: ClaimedPassback) -> tuple[int | None, str | None]:
        try:
            return self._sender.send(claimed)
        except Exception as error:  # a sender's bug costs this score only, retried on the schedule
            logger.exception("score passback %s could not be sent", claimed.id)
            return None, one_line(f"{type(error).__name__}: {error}")


def run_delivery_loop(
    session_factory: sessionmaker[Session],
    settings: Settings,
    worker_id: str,
    stop: threading.Event,
    score_sender: ScoreSenderFactory | None = None,
) -> None:
    """What each worker process runs beside its grading loop, in a thread of its own: webhooks,
    and LTI score passbacks when the worker gives a sender for them."""
    deliverers: list[LeasedDeliverer[Any]] = [WebhookDeliverer(session_factory, settings, worker_id)]
    if score_sender is not None:
        deliverers.append(
            PassbackDeliverer(session_factory, settings, worker_id, score_sender(session_factory, settings))
        )
    try:
        while not stop.is_set():
            claimed = 0
            for deliverer in deliverers:
                try:
                    claimed += deliverer.run_once()
                except Exception:  # the database went away: try again after the pause
                    logger.exception("%s loop failed; retrying", deliverer.kind)
            if claimed == 0:
                stop.wait(settings.poll_seconds)
    finally:
        for deliverer in deliverers:
            deliverer.close()


def one_line(text: str) -> str:
    return "".join(character for character in " ".join(text.split()) if character.isprintable())[
        :MAX_ERROR_CHARS
    ]
