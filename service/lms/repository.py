"""Every statement about webhook subscriptions, the outbox and its deliveries.

A delivery is claimed like a grading job (service/grading/repository.py): candidates selected
FOR UPDATE SKIP LOCKED on PostgreSQL, the claim re-checked in the UPDATE's WHERE (so SQLite, without
row locks, also hands a delivery to one claimer), and every later write fenced by the lease owner
and the attempt it claimed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.models import (
    Assignment,
    AssignmentVersion,
    Course,
    ManualGrade,
    QuestionResult,
    Submission,
    User,
)
from service.models.lms import DeliveryStatus, OutboxEvent, WebhookDelivery, WebhookSubscription


def course_id(session: Session, slug: str) -> int | None:
    return session.scalar(select(Course.id).where(Course.slug == slug))


# ---- subscriptions ----------------------------------------------------------------------------


def add_subscription(session: Session, subscription: WebhookSubscription) -> WebhookSubscription:
    session.add(subscription)
    session.flush()
    return subscription


def subscriptions_of(session: Session, course: int) -> list[WebhookSubscription]:
    statement = (
        select(WebhookSubscription)
        .where(WebhookSubscription.course_id == course)
        .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    )
    return list(session.scalars(statement))


def subscription(session: Session, course: int, subscription_id: uuid.UUID) -> WebhookSubscription | None:
    return session.scalar(
        select(WebhookSubscription).where(
            WebhookSubscription.course_id == course, WebhookSubscription.id == subscription_id
        )
    )


def disable_subscription(session: Session, subscription_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id, WebhookSubscription.disabled_at.is_(None))
        .values(disabled_at=now)
        .execution_options(synchronize_session=False)
    )


def active_subscription_ids(session: Session, course: int, event_type: str) -> list[uuid.UUID]:
    """The course's live subscriptions that take this event type (the list is JSON: filtered here,
    the same on both databases; a course has a handful of subscriptions)."""
    rows = session.execute(
        select(WebhookSubscription.id, WebhookSubscription.events).where(
            WebhookSubscription.course_id == course, WebhookSubscription.disabled_at.is_(None)
        )
    ).all()
    return [row.id for row in rows if event_type in row.events]


# ---- what an event says -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmissionFacts:
    course_id: int
    course: str
    assignment: str
    student: str
    score: float | None
    max_score: float
    late_penalty: float
    graded_at: datetime | None


def submission_facts(session: Session, submission_id: uuid.UUID) -> SubmissionFacts | None:
    row = session.execute(
        select(
            Course.id,
            Course.slug,
            Assignment.slug,
            User.username,
            Submission.score,
            Submission.max_score,
            Submission.late_penalty,
            Submission.graded_at,
        )
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .join(Course, Course.id == Assignment.course_id)
        .join(User, User.id == Submission.user_id)
        .where(Submission.id == submission_id)
    ).one_or_none()
    return None if row is None else SubmissionFacts(*row)


def current_answers(
    session: Session, submission_id: uuid.UUID
) -> list[tuple[QuestionResult, ManualGrade | None]]:
    """The current result of each question with a person's grade on it, if any."""
    statement = (
        select(QuestionResult, ManualGrade)
        .outerjoin(
            ManualGrade,
            and_(
                ManualGrade.submission_id == QuestionResult.submission_id,
                ManualGrade.question_key == QuestionResult.question_key,
            ),
        )
        .where(QuestionResult.submission_id == submission_id, QuestionResult.is_current.is_(True))
        .order_by(QuestionResult.question_key)
    )
    return [(result, grade) for result, grade in session.execute(statement)]


# ---- the outbox -------------------------------------------------------------------------------


def add_event(
    session: Session,
    event: OutboxEvent,
    subscription_ids: Sequence[uuid.UUID],
    now: datetime,
) -> OutboxEvent:
    session.add(event)
    session.flush()  # the event's id: the order of events, and the deliveries' reference
    session.add_all(
        WebhookDelivery(
            subscription_id=subscription_id,
            event_id=event.id,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for subscription_id in subscription_ids
    )
    session.flush()
    return event


def deliveries_of(
    session: Session, subscription_id: uuid.UUID, before: int | None, limit: int
) -> list[tuple[WebhookDelivery, OutboxEvent]]:
    """Newest first, keyset-paged on the delivery id."""
    statement = (
        select(WebhookDelivery, OutboxEvent)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if before is not None:
        statement = statement.where(WebhookDelivery.id < before)
    return [(delivery, event) for delivery, event in session.execute(statement)]


def delivery(
    session: Session, subscription_id: uuid.UUID, delivery_id: int
) -> tuple[WebhookDelivery, OutboxEvent] | None:
    row = session.execute(
        select(WebhookDelivery, OutboxEvent)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.id == delivery_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def reset_delivery(session: Session, delivery_id: int, now: datetime) -> None:
    """Due now, on a fresh schedule. A worker holding it in flight is fenced out (its attempt no
    longer matches) and the delivery is sent again: the receiver dedupes on `webhook-id`."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )


# ---- the delivery loop ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    attempt: int
    event_id: int
    subscription_id: uuid.UUID
    url: str
    secret_encrypted: str
    payload: dict[str, Any]


def _claimable(now: datetime) -> ColumnElement[bool]:
    return and_(
        WebhookDelivery.status == DeliveryStatus.PENDING,
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.lease_expires_at.is_(None), WebhookDelivery.lease_expires_at < now),
    )


def _no_earlier_pending() -> ColumnElement[bool]:
    """Order per (subscription, submission): an event waits while an earlier event of the same
    submission to the same subscription is still pending (failing, or in flight). A dead one
    no longer holds the later ones back."""
    earlier = aliased(WebhookDelivery)
    earlier_event = aliased(OutboxEvent)
    this_event = aliased(OutboxEvent)
    return ~exists(
        select(earlier.id)
        .join(earlier_event, earlier_event.id == earlier.event_id)
        .join(this_event, this_event.id == WebhookDelivery.event_id)
        .where(
            earlier.subscription_id == WebhookDelivery.subscription_id,
            earlier.status == DeliveryStatus.PENDING,
            earlier.event_id < WebhookDelivery.event_id,
            earlier_event.submission_id == this_event.submission_id,
        )
    )


def claim_deliveries(
    session: Session, worker_id: str, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedDelivery]:
    candidates = (
        select(WebhookDelivery.id)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(_claimable(now), _no_earlier_pending(), WebhookSubscription.disabled_at.is_(None))
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
        .cte("due")
    )
    claimed = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(select(candidates.c.id)), _claimable(now))
        .values(
            attempts=WebhookDelivery.attempts + 1,
            lease_owner=worker_id,
            lease_expires_at=now + lease,
        )
        .returning(WebhookDelivery.id, WebhookDelivery.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    if not claimed:
        return []
    attempts = {row.id: row.attempts for row in claimed}
    rows = session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.event_id,
            WebhookSubscription.id,
            WebhookSubscription.url,
            WebhookSubscription.secret_encrypted,
            OutboxEvent.payload,
        )
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(list(attempts)))
        .order_by(WebhookDelivery.id)
    ).all()
    return [
        ClaimedDelivery(id, attempts[id], event_id, subscription_id, url, secret, payload)
        for id, event_id, subscription_id, url, secret, payload in rows
    ]


def finish_delivery(
    session: Session,
    claimed: ClaimedDelivery,
    worker_id: str,
    values: dict[str, Any],
) -> bool:
    """Store an attempt's outcome if this worker still holds that attempt; False if it was taken
    over (lease expired) or reset by a redeliver meanwhile."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claimed.id,
            WebhookDelivery.lease_owner == worker_id,
            WebhookDelivery.attempts == claimed.attempt,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .values(lease_owner=None, lease_expires_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
