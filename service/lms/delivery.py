"""The outbound webhook loop the workers run: claim due deliveries under a lease, sign each with
the `standardwebhooks` library, POST it with httpx, store the outcome fenced by the lease.

2xx is delivered; anything else (another status, a refused connection, a timeout) is retried on
RETRY_SCHEDULE, then the delivery is dead (staff may redeliver). Nothing here runs on the request
path, and no transaction stays open while a request is in flight (on SQLite an open write
transaction would stall the API). The batch is sent concurrently, each attempt under its own
timeout: a slow receiver delays only its own deliveries."""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from service.config import Settings
from service.db import transaction
from service.lms import repository, secrets_box
from service.lms.repository import ClaimedDelivery
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


class WebhookDeliverer:
    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, worker_id: str) -> None:
        self._session_factory = session_factory
        self._settings = settings
        self._worker_id = worker_id
        # Longer than any attempt can take (connect + write + read, each under the timeout), so a
        # live attempt is never taken over; a dead worker's delivery comes back when it expires.
        self._lease = timedelta(seconds=4 * settings.webhook_timeout_seconds + 10)
        timeout = httpx.Timeout(settings.webhook_timeout_seconds)
        # No redirects: a 3xx is a failed attempt, not a hop to wherever the receiver points.
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"user-agent": USER_AGENT}
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.webhook_batch, thread_name_prefix="webhook")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    def run_once(self) -> int:
        """Claim one batch of due deliveries, send them, store the outcomes; how many it claimed."""
        with transaction(self._session_factory) as session:
            claimed = repository.claim_deliveries(
                session, self._worker_id, utcnow(), self._lease, self._settings.webhook_batch
            )
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
            return None, _one_line(f"{type(error).__name__}: {error}")
        except Exception as error:  # an unreadable secret, a URL httpx refuses: this delivery only
            logger.exception("webhook delivery %s could not be sent", delivery.id)
            return None, _one_line(f"{type(error).__name__}: {error}")
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"the receiver answered {response.status_code}"

    def _store(
        self,
        session: Session,
        delivery: ClaimedDelivery,
        status_code: int | None,
        error: str | None,
        now: datetime,
    ) -> None:
        values: dict[str, Any] = {"last_status_code": status_code, "last_error": error}
        if error is None:
            values |= {"status": DeliveryStatus.DELIVERED, "delivered_at": now}
        elif (delay := retry_delay(self._settings, delivery.attempt)) is None:
            values |= {"status": DeliveryStatus.DEAD}
            logger.warning("webhook delivery %s is dead after %s attempts", delivery.id, delivery.attempt)
        else:
            values |= {"next_attempt_at": now + delay}
        if not repository.finish_delivery(session, delivery, self._worker_id, values):
            logger.info("webhook delivery %s was taken over or reset; outcome dropped", delivery.id)


def run_delivery_loop(
    session_factory: sessionmaker[Session], settings: Settings, worker_id: str, stop: threading.Event
) -> None:
    """What each worker process runs beside its grading loop, in a thread of its own."""
    deliverer = WebhookDeliverer(session_factory, settings, worker_id)
    try:
        while not stop.is_set():
            try:
                claimed = deliverer.run_once()
            except Exception:  # the database went away: try again after the pause
                logger.exception("webhook delivery loop failed; retrying")
                claimed = 0
            if claimed == 0:
                stop.wait(settings.poll_seconds)
    finally:
        deliverer.close()


def _one_line(text: str) -> str:
    return "".join(character for character in " ".join(text.split()) if character.isprintable())[
        :MAX_ERROR_CHARS
    ]
