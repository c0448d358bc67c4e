"""Outbound webhooks: the subscription and delivery-log shapes of the staff API."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.models.lms import DeliveryStatus

MAX_URL_CHARS = 2000


class WebhookEvent(StrEnum):
    SUBMISSION_GRADED = "submission.graded"
    GRADE_CHANGED = "grade.changed"


class WebhookCreate(BaseModel):
    """Where to POST the course's events, and which ones."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1, max_length=MAX_URL_CHARS, examples=["https://lms.example.edu/hooks/autograde"]
    )
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(WebhookEvent))

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        # Only http(s) to a named host: no file:, gopher: or schemeless URLs reach httpx.
        if not url.isprintable() or any(character.isspace() for character in url):
            raise ValueError("the URL holds spaces or control characters")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (a bad port raises here, not when the worker sends)
        except ValueError as error:
            raise ValueError(f"not a URL: {error}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the URL must be http:// or https:// with a host")
        return url

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[WebhookEvent]) -> list[WebhookEvent]:
        return sorted(set(events))


class WebhookView(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    created_at: datetime
    # Set once the subscription was deleted: no new deliveries; its log stays readable.
    disabled_at: datetime | None


class WebhookCreated(WebhookView):
    # Shown in this response only; it is stored encrypted and never returned again.
    secret: str = Field(description="The signing secret (`whsec_...`), shown once")


class WebhookList(BaseModel):
    items: list[WebhookView]


class DeliveryView(BaseModel):
    id: int
    event_id: int
    event_type: str
    submission_id: uuid.UUID | None
    # The `webhook-id` header every attempt of this delivery carries (receivers dedupe on it).
    webhook_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryList(BaseModel):
    items: list[DeliveryView]
    # Pass as `before` for the next (older) page; None on the last page.
    next: int | None


class ScoreDeliveryView(BaseModel):
    """One score sent (or to be sent) to the LMS gradebook by LTI Assignment and Grade Services."""

    id: int
    event_id: int
    event_type: str
    submission_id: uuid.UUID | None
    assignment: str
    # Our student, and the LMS's id of them (the AGS score's userId).
    student: str | None
    lms_user_id: str
    # What the score carries: the gradebook's counted score (None while a TA still has to grade).
    score_given: float | None
    score_maximum: float | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class ScoreDeliveryList(BaseModel):
    items: list[ScoreDeliveryView]
    # Pass as `before` for the next (older) page; None on the last page.
    next: int | None
