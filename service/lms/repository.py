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

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.models import (
    Assignment,
    AssignmentVersion,
    Course,
    LmsMapping,
    LmsMappingKind,
    LtiLineItem,
    LtiPlatform,
    LtiScoreDelivery,
    ManualGrade,
    QuestionResult,
    Submission,
    User,
)
from service.models.lms import DeliveryStatus, OutboxEvent, WebhookDelivery, WebhookSubscription

# The two kinds of delivery share their lease columns and so the claim, fence and retry rules.
LeasedRow = type[WebhookDelivery] | type[LtiScoreDelivery]


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
    assignment_id: int
    assignment: str
    user_id: int
    student: str
    score: float | None
    max_score: float
    late_penalty: float
    graded_at: datetime | None
    version_id: int


def submission_facts(session: Session, submission_id: uuid.UUID) -> SubmissionFacts | None:
    return submissions_facts(session, [submission_id]).get(submission_id)


def submissions_facts(
    session: Session, submission_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SubmissionFacts]:
    """The facts of each of these submissions that still exists, in one statement."""
    rows = session.execute(
        select(
            Submission.id,
            Course.id,
            Course.slug,
            Assignment.id,
            Assignment.slug,
            User.id,
            User.username,
            Submission.score,
            Submission.max_score,
            Submission.late_penalty,
            Submission.graded_at,
            Submission.assignment_version_id,
        )
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .join(Course, Course.id == Assignment.course_id)
        .join(User, User.id == Submission.user_id)
        .where(Submission.id.in_(list(submission_ids)))
    ).all()
    facts = {}
    for row in rows:
        values: tuple[Any, ...] = tuple(row)  # twelve columns: past the typed overloads of select()
        facts[values[0]] = SubmissionFacts(*values[1:])
    return facts


def newest_graded_submissions(session: Session, assignment_id: int) -> list[uuid.UUID]:
    """Per student, their newest graded submission to the assignment (any version)."""
    rows = session.execute(
        select(Submission.user_id, Submission.id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .where(AssignmentVersion.assignment_id == assignment_id, Submission.graded_at.is_not(None))
        .order_by(Submission.user_id, Submission.created_at.desc(), Submission.id.desc())
    ).all()
    newest: dict[int, uuid.UUID] = {}
    for user_id, submission_id in rows:
        newest.setdefault(user_id, submission_id)
    return list(newest.values())


def has_hidden_results(session: Session, assignment_id: int, user_id: int | None = None) -> bool:
    """Whether any current result of the assignment (of one student, if given) has hidden checks
    (a stored public view: docs/authoring.md, public and hidden checks)."""
    statement = (
        select(QuestionResult.submission_id)
        .join(Submission, Submission.id == QuestionResult.submission_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .where(
            AssignmentVersion.assignment_id == assignment_id,
            QuestionResult.is_current.is_(True),
            QuestionResult.public_view.is_not(None),
        )
    )
    if user_id is not None:
        statement = statement.where(Submission.user_id == user_id)
    return session.scalar(select(exists(statement))) is True


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


def reset_delivery(session: Session, table: LeasedRow, delivery_id: int, now: datetime) -> None:
    """Due now, on a fresh schedule. A worker holding it in flight is fenced out (its attempt no
    longer matches) and the delivery is sent again: a webhook receiver dedupes on `webhook-id`; a
    score's next attempt takes a fresh timestamp, later than any the platform was given."""
    session.execute(
        update(table)
        .where(table.id == delivery_id)
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


def _claimable(now: datetime, model: LeasedRow) -> ColumnElement[bool]:
    return and_(
        model.status == DeliveryStatus.PENDING,
        model.next_attempt_at <= now,
        or_(model.lease_expires_at.is_(None), model.lease_expires_at < now),
    )


def _take_lease(
    session: Session, model: LeasedRow, candidates: Any, worker_id: str, now: datetime, lease: timedelta
) -> dict[int, int]:
    """Lease the candidates still claimable (re-checked here: SQLite has no row locks); the attempt
    number each claim holds, by row id. Every later write is fenced by it (_finish)."""
    claimed = session.execute(
        update(model)
        .where(model.id.in_(select(candidates.c.id)), _claimable(now, model))
        .values(attempts=model.attempts + 1, lease_owner=worker_id, lease_expires_at=now + lease)
        .returning(model.id, model.attempts)
        .execution_options(synchronize_session=False)
    ).all()
    return {row.id: row.attempts for row in claimed}


def _finish(
    session: Session, model: LeasedRow, row_id: int, attempt: int, worker_id: str, values: dict[str, Any]
) -> bool:
    """Store an attempt's outcome if this worker still holds that attempt; False if it was taken
    over (lease expired) or reset by a redeliver meanwhile."""
    result = session.execute(
        update(model)
        .where(
            model.id == row_id,
            model.lease_owner == worker_id,
            model.attempts == attempt,
            model.status == DeliveryStatus.PENDING,
        )
        .values(lease_owner=None, lease_expires_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


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
        .where(
            _claimable(now, WebhookDelivery), _no_earlier_pending(), WebhookSubscription.disabled_at.is_(None)
        )
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
        .cte("due")
    )
    attempts = _take_lease(session, WebhookDelivery, candidates, worker_id, now, lease)
    if not attempts:
        return []
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
    return _finish(session, WebhookDelivery, claimed.id, claimed.attempt, worker_id, values)


# ---- LTI score passback (Assignment and Grade Services) ---------------------------------------
# The outbox's second kind of delivery. Its rows are queued here with the event; sending them is
# service/lti/passback.py's, behind the ScoreSender interface of service/lms/delivery.py.

# Platforms keep a score only if its timestamp is later than the last one's: a millisecond apart
# survives a platform that stores milliseconds.
SCORE_TIMESTAMP_STEP = timedelta(milliseconds=1)


def passback_targets(
    session: Session, course_id: int, assignment_id: int, user_ids: Sequence[int]
) -> dict[int, list[tuple[int, str]]]:
    """Per student, the (line item, LMS user id) pairs to send a score of this assignment to: the
    assignment's line item on the course's LTI platform (known once a launch brought its AGS claim)
    and each LMS id the student is mapped from in the course. One statement for many students."""
    rows = session.execute(
        select(LmsMapping.local_id, LtiLineItem.id, LmsMapping.external_id)
        .join(LtiPlatform, LtiPlatform.id == LtiLineItem.platform_id)
        .join(
            LmsMapping,
            and_(
                LmsMapping.course_id == LtiPlatform.course_id,
                LmsMapping.kind == LmsMappingKind.USER,
                LmsMapping.local_id.in_(list(user_ids)),
            ),
        )
        .where(LtiPlatform.course_id == course_id, LtiLineItem.assignment_id == assignment_id)
        .order_by(LtiLineItem.id, LmsMapping.external_id)
    ).all()
    targets: dict[int, list[tuple[int, str]]] = {}
    for user_id, line_item_id, external_id in rows:
        targets.setdefault(int(user_id), []).append((line_item_id, external_id))
    return targets


def add_passbacks(session: Session, event_id: int, targets: Sequence[tuple[int, str]], now: datetime) -> None:
    session.add_all(
        LtiScoreDelivery(
            event_id=event_id,
            line_item_id=line_item_id,
            lms_user_id=lms_user_id,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for line_item_id, lms_user_id in targets
    )
    session.flush()


@dataclass(frozen=True, slots=True)
class ClaimedPassback:
    id: int
    attempt: int
    line_item_id: int
    token_url: str
    client_id: str
    lineitems_url: str | None
    lineitem_url: str | None
    resource_link_id: str | None
    assignment: str
    lms_user_id: str
    score_given: float | None
    score_maximum: float
    pending_manual: bool
    timestamp: datetime


def _no_earlier_pending_passback() -> ColumnElement[bool]:
    """Order per (line item, LMS user): a score waits while an earlier one is still pending."""
    earlier = aliased(LtiScoreDelivery)
    return ~exists(
        select(earlier.id).where(
            earlier.line_item_id == LtiScoreDelivery.line_item_id,
            earlier.lms_user_id == LtiScoreDelivery.lms_user_id,
            earlier.status == DeliveryStatus.PENDING,
            earlier.id < LtiScoreDelivery.id,
        )
    )


def _score_timestamp(session: Session, row_id: int, now: datetime) -> datetime:
    """Later than every timestamp already given to a score of the same (line item, user). Only one
    of them is in flight at a time (the order rule above), so reading the latest is enough."""
    target = select(LtiScoreDelivery.line_item_id, LtiScoreDelivery.lms_user_id).where(
        LtiScoreDelivery.id == row_id
    )
    line_item_id, lms_user_id = session.execute(target).one()
    latest = session.scalar(
        select(func.max(LtiScoreDelivery.score_timestamp)).where(
            LtiScoreDelivery.line_item_id == line_item_id,
            LtiScoreDelivery.lms_user_id == lms_user_id,
            LtiScoreDelivery.id != row_id,
        )
    )
    stamp = now.replace(microsecond=now.microsecond // 1000 * 1000)
    if latest is not None and stamp < latest + SCORE_TIMESTAMP_STEP:
        stamp = latest + SCORE_TIMESTAMP_STEP
    return stamp


def passback_score(payload: dict[str, Any]) -> tuple[float | None, float, bool]:
    """(scoreGiven, scoreMaximum, pending manual grading) of an event: the gradebook's counted
    total (events from before it was recorded: the submission's)."""
    data = payload["data"]
    counted = data.get("gradebook")
    if counted:
        return counted["score"], counted["max_score"], bool(counted["pending_manual"])
    return data["effective_score"], data["max_score"], bool(data["pending_manual"])


def claim_passbacks(
    session: Session, worker_id: str, now: datetime, lease: timedelta, limit: int
) -> list[ClaimedPassback]:
    candidates = (
        select(LtiScoreDelivery.id)
        .where(_claimable(now, LtiScoreDelivery), _no_earlier_pending_passback())
        .order_by(LtiScoreDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=LtiScoreDelivery)
        .cte("due_scores")
    )
    attempts = _take_lease(session, LtiScoreDelivery, candidates, worker_id, now, lease)
    if not attempts:
        return []
    # A fresh timestamp per attempt: a retry of a score the platform did take is still newer.
    for row_id in sorted(attempts):
        session.execute(
            update(LtiScoreDelivery)
            .where(LtiScoreDelivery.id == row_id)
            .values(score_timestamp=_score_timestamp(session, row_id, now))
            .execution_options(synchronize_session=False)
        )
    rows = session.execute(
        select(
            LtiScoreDelivery.id,
            LtiScoreDelivery.line_item_id,
            LtiPlatform.token_url,
            LtiPlatform.client_id,
            LtiLineItem.lineitems_url,
            LtiLineItem.lineitem_url,
            LtiLineItem.resource_link_id,
            Assignment.slug,
            LtiScoreDelivery.lms_user_id,
            LtiScoreDelivery.score_timestamp,
            OutboxEvent.payload,
        )
        .join(LtiLineItem, LtiLineItem.id == LtiScoreDelivery.line_item_id)
        .join(LtiPlatform, LtiPlatform.id == LtiLineItem.platform_id)
        .join(Assignment, Assignment.id == LtiLineItem.assignment_id)
        .join(OutboxEvent, OutboxEvent.id == LtiScoreDelivery.event_id)
        .where(LtiScoreDelivery.id.in_(list(attempts)))
        .order_by(LtiScoreDelivery.id)
    ).all()
    claimed = []
    for row in rows:
        score_given, score_maximum, pending_manual = passback_score(row.payload)
        claimed.append(
            ClaimedPassback(
                id=row[0],
                attempt=attempts[row[0]],
                line_item_id=row.line_item_id,
                token_url=row.token_url,
                client_id=row.client_id,
                lineitems_url=row.lineitems_url,
                lineitem_url=row.lineitem_url,
                resource_link_id=row.resource_link_id,
                assignment=row.slug,
                lms_user_id=row.lms_user_id,
                score_given=score_given,
                score_maximum=score_maximum,
                pending_manual=pending_manual,
                timestamp=row.score_timestamp,
            )
        )
    return claimed


def finish_passback(
    session: Session, claimed: ClaimedPassback, worker_id: str, values: dict[str, Any]
) -> bool:
    return _finish(session, LtiScoreDelivery, claimed.id, claimed.attempt, worker_id, values)


# ---- the staff's log of LTI score deliveries --------------------------------------------------


def _score_log() -> Any:
    return (
        select(LtiScoreDelivery, OutboxEvent, Assignment.slug)
        .join(OutboxEvent, OutboxEvent.id == LtiScoreDelivery.event_id)
        .join(LtiLineItem, LtiLineItem.id == LtiScoreDelivery.line_item_id)
        .join(Assignment, Assignment.id == LtiLineItem.assignment_id)
        .join(LtiPlatform, LtiPlatform.id == LtiLineItem.platform_id)
    )


def score_deliveries_of(
    session: Session, course: int, before: int | None, limit: int
) -> list[tuple[LtiScoreDelivery, OutboxEvent, str]]:
    """The course's score deliveries (to its platform), newest first, keyset-paged on the id."""
    statement = (
        _score_log().where(LtiPlatform.course_id == course).order_by(LtiScoreDelivery.id.desc()).limit(limit)
    )
    if before is not None:
        statement = statement.where(LtiScoreDelivery.id < before)
    return [(row[0], row[1], row[2]) for row in session.execute(statement)]


def score_delivery(
    session: Session, course: int, delivery_id: int
) -> tuple[LtiScoreDelivery, OutboxEvent, str] | None:
    row = session.execute(
        _score_log().where(LtiPlatform.course_id == course, LtiScoreDelivery.id == delivery_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


def later_score_delivery(session: Session, delivery: LtiScoreDelivery) -> int | None:
    """A score queued after this one for the same (line item, LMS user): it supersedes it."""
    return session.scalar(
        select(LtiScoreDelivery.id)
        .where(
            LtiScoreDelivery.line_item_id == delivery.line_item_id,
            LtiScoreDelivery.lms_user_id == delivery.lms_user_id,
            LtiScoreDelivery.id > delivery.id,
        )
        .order_by(LtiScoreDelivery.id)
        .limit(1)
    )
