"""Outbound webhooks: subscriptions (the course's staff), the outbox written where scores change,
and the delivery log with its redeliver action. Sending is service/lms/delivery.py, in the workers.

record_submission_event is called by grading (the runner) and marking, inside the transaction
that changes the score: the event commits with the score or not at all. This module therefore
imports neither of them (import-linter)."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from graders import GradeResult, Verdict
from service.assignments.service import current_rules
from service.assignments.snapshots import get_snapshot
from service.auth.service import Principal
from service.config import Settings
from service.courses.service import role_in
from service.errors import Forbidden, NotFound
from service.grades.service import counted_total
from service.lms import repository, secrets_box
from service.lms.schemas import (
    DeliveryList,
    DeliveryView,
    WebhookCreate,
    WebhookCreated,
    WebhookEvent,
    WebhookList,
    WebhookView,
)
from service.models import utcnow
from service.models.lms import OutboxEvent, WebhookDelivery, WebhookSubscription

SECRET_BYTES = 32


def webhook_id(subscription_id: uuid.UUID, event_id: int) -> str:
    """The `webhook-id` of a delivery: the same on every attempt and redelivery, so a receiver
    acts on it once (Standard Webhooks' idempotency key)."""
    return f"msg_{subscription_id.hex}_{event_id}"


def new_signing_secret() -> str:
    # Standard Webhooks: "whsec_" + base64 of 24-64 random bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


# ---- access -----------------------------------------------------------------------------------


def staff_course(
    session: Session, principal: Principal, course_slug: str, what: str = "manage the course's webhooks"
) -> int:
    """The course's id for a TA or instructor of it; 404 for anyone else in no role, 403 for a student."""
    course = repository.course_id(session, course_slug)
    role = None if course is None else role_in(session, course, principal.user_id)
    if course is None or role is None:
        raise NotFound(f"No course {course_slug!r}.")
    if not role.is_staff:
        raise Forbidden(f"Only TAs and instructors {what}.")
    return course


def _subscription(
    session: Session, principal: Principal, course_slug: str, subscription_id: uuid.UUID
) -> WebhookSubscription:
    course = staff_course(session, principal, course_slug)
    found = repository.subscription(session, course, subscription_id)
    if found is None:
        raise NotFound("No such webhook subscription in this course.")
    return found


def _view(subscription: WebhookSubscription) -> WebhookView:
    return WebhookView(
        id=subscription.id,
        url=subscription.url,
        events=list(subscription.events),
        created_at=subscription.created_at,
        disabled_at=subscription.disabled_at,
    )


# ---- subscriptions ----------------------------------------------------------------------------


def create_subscription(
    session: Session, settings: Settings, principal: Principal, course_slug: str, request: WebhookCreate
) -> WebhookCreated:
    course = staff_course(session, principal, course_slug)
    secret = new_signing_secret()
    subscription = repository.add_subscription(
        session,
        WebhookSubscription(
            id=uuid.uuid4(),
            course_id=course,
            url=request.url,
            events=[str(event) for event in request.events],
            secret_encrypted=secrets_box.encrypt(settings, secret),
            created_by_user_id=principal.user_id,
            created_at=utcnow(),
        ),
    )
    return WebhookCreated(**_view(subscription).model_dump(), secret=secret)


def list_subscriptions(session: Session, principal: Principal, course_slug: str) -> WebhookList:
    course = staff_course(session, principal, course_slug)
    return WebhookList(items=[_view(item) for item in repository.subscriptions_of(session, course)])


def disable_subscription(
    session: Session, principal: Principal, course_slug: str, subscription_id: uuid.UUID
) -> None:
    """No new deliveries, and the pending ones are not sent (the claim skips a disabled
    subscription); the log stays. Deleting twice is not an error."""
    _subscription(session, principal, course_slug, subscription_id)
    repository.disable_subscription(session, subscription_id, utcnow())


def _delivery_view(delivery: WebhookDelivery, event: OutboxEvent) -> DeliveryView:
    return DeliveryView(
        id=delivery.id,
        event_id=event.id,
        event_type=event.event_type,
        submission_id=event.submission_id,
        webhook_id=webhook_id(delivery.subscription_id, event.id),
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


def list_deliveries(
    session: Session,
    principal: Principal,
    course_slug: str,
    subscription_id: uuid.UUID,
    before: int | None,
    limit: int,
) -> DeliveryList:
    _subscription(session, principal, course_slug, subscription_id)
    rows = repository.deliveries_of(session, subscription_id, before, limit)
    items = [_delivery_view(delivery, event) for delivery, event in rows]
    return DeliveryList(items=items, next=items[-1].id if len(items) == limit else None)


def redeliver(
    session: Session, principal: Principal, course_slug: str, subscription_id: uuid.UUID, delivery_id: int
) -> DeliveryView:
    """Send the delivery again, now, on a fresh retry schedule (a dead one, a delivered one the
    receiver lost, or a pending one waiting out a long backoff)."""
    _subscription(session, principal, course_slug, subscription_id)
    if repository.delivery(session, subscription_id, delivery_id) is None:
        raise NotFound("No such delivery of this subscription.")
    repository.reset_delivery(session, WebhookDelivery, delivery_id, utcnow())
    session.expire_all()
    found = repository.delivery(session, subscription_id, delivery_id)
    assert found is not None  # read back in the same transaction
    return _delivery_view(*found)


# ---- the outbox -------------------------------------------------------------------------------


def _verdict(max_score: float, verdict: Verdict, manual_score: float | None) -> str:
    # As the submission view shows it: a person's grade decides the verdict.
    if manual_score is None:
        return str(verdict)
    fraction = manual_score / max_score if max_score > 0 else 1.0
    return str(GradeResult.from_fraction(fraction, "").verdict)


def _effective(raw: float | None, late_penalty: float) -> float | None:
    # The staff issue's rule (docs/grading-policy.md): raw times (1 - late penalty), 6 places.
    return None if raw is None else round(raw * (1 - late_penalty), 6)


def record_submission_event(
    session: Session, submission_id: uuid.UUID, event_type: WebhookEvent, now: datetime | None = None
) -> OutboxEvent | None:
    """Write the event and one pending delivery per live subscription of the course that takes
    it, and one score passback per LTI line item of the assignment and LMS id of the student, in
    the caller's transaction (after the scores are written); nothing when none is due."""
    events = record_submission_events(session, [submission_id], event_type, now)
    return events[0] if events else None


def record_submission_events(
    session: Session,
    submission_ids: Sequence[uuid.UUID],
    event_type: WebhookEvent,
    now: datetime | None = None,
) -> list[OutboxEvent]:
    """record_submission_event for each of these submissions, in order (a grading batch's), with
    what decides whether an event is due read once: the facts in one statement, the subscriptions
    once per course, the LTI targets once per assignment. Whether grades are held is read only for
    a student with a target: held grades send no passback, so without one it changes nothing."""
    if not submission_ids:
        return []
    now = now or utcnow()
    facts = repository.submissions_facts(session, submission_ids)
    students: dict[tuple[int, int], set[int]] = {}
    for known in facts.values():
        students.setdefault((known.course_id, known.assignment_id), set()).add(known.user_id)
    targets = {
        assignment_id: repository.passback_targets(session, course_id, assignment_id, sorted(user_ids))
        for (course_id, assignment_id), user_ids in students.items()
    }
    subscribers: dict[int, list[uuid.UUID]] = {}
    events = []
    for submission_id in submission_ids:
        fact = facts.get(submission_id)
        if fact is None:
            continue
        if fact.course_id not in subscribers:
            subscribers[fact.course_id] = repository.active_subscription_ids(
                session, fact.course_id, str(event_type)
            )
        passbacks = targets[fact.assignment_id].get(fact.user_id, [])
        if passbacks and grades_held(session, fact):
            passbacks = []  # the release sends them (record_release)
        if subscribers[fact.course_id] or passbacks:
            events.append(
                _record(session, submission_id, fact, subscribers[fact.course_id], passbacks, event_type, now)
            )
    return events


def grades_held(session: Session, facts: repository.SubmissionFacts) -> bool:
    """Whether the LMS must not hear the student's score yet: the assignment's grades are held
    until the staff release them (docs/grading-policy.md), or the student has answers with hidden
    checks, not released yet (their total would reveal the hidden results; docs/lms.md)."""
    rules = current_rules(session, get_snapshot(session, facts.version_id))
    if not rules.grades_visible_to_students:
        return True
    return not rules.hidden_results_visible and repository.has_hidden_results(
        session, facts.assignment_id, facts.user_id
    )


def release_reaches_lms(session: Session, assignment_id: int, was_held: bool) -> bool:
    """Whether releasing an assignment's grades tells the LMS something it was not told: the grades
    were held, or some answers have hidden checks whose results the LMS has not had."""
    return was_held or repository.has_hidden_results(session, assignment_id)


def _passback_targets(session: Session, facts: repository.SubmissionFacts) -> list[tuple[int, str]]:
    """Where the LMS gradebook hears of the score; nowhere while the grades are held (the release
    sends them, record_release). Held or not is read only when there is somewhere to send it."""
    targets = repository.passback_targets(session, facts.course_id, facts.assignment_id, [facts.user_id])
    mine = targets.get(facts.user_id, [])
    return [] if not mine or grades_held(session, facts) else mine


def record_release(session: Session, assignment_id: int) -> int:
    """The grades of a held assignment were released: `grade.changed` for each student's newest
    graded submission, and their gradebook score to the LMS, in the caller's transaction (after the
    release is written); how many students. Each is sent once per release through the outbox."""
    recorded = 0
    now = utcnow()
    for submission_id in repository.newest_graded_submissions(session, assignment_id):
        if record_submission_event(session, submission_id, WebhookEvent.GRADE_CHANGED, now) is not None:
            recorded += 1
    return recorded


def record_grade_changes(session: Session, course_id: int, submission_ids: list[uuid.UUID]) -> int:
    """`grade.changed` for submissions whose late penalty was measured again (a policy, an
    extension, a new material version), in the caller's transaction; how many were recorded.

    One not graded yet gets none: its first grading announces it, with the new penalty. Call it
    after the UPDATE of the lateness: on PostgreSQL that UPDATE waited for a grading holding the
    row to commit, so graded_at read here is the committed one and no score goes unannounced."""
    if not submission_ids:
        return 0
    subscribers = repository.active_subscription_ids(session, course_id, WebhookEvent.GRADE_CHANGED)
    now = utcnow()
    recorded = 0
    for submission_id in submission_ids:
        facts = repository.submission_facts(session, submission_id)
        if facts is None or facts.graded_at is None:
            continue
        # The LMS gradebook (LTI passback) hears of the new effective score too, unless held.
        passbacks = _passback_targets(session, facts)
        if not subscribers and not passbacks:
            continue
        _record(session, submission_id, facts, subscribers, passbacks, WebhookEvent.GRADE_CHANGED, now)
        recorded += 1
    return recorded


def _record(
    session: Session,
    submission_id: uuid.UUID,
    facts: repository.SubmissionFacts,
    subscribers: list[uuid.UUID],
    passbacks: list[tuple[int, str]],
    event_type: WebhookEvent,
    now: datetime,
) -> OutboxEvent:
    questions = []
    for result, grade in repository.current_answers(session, submission_id):
        manual = grade.score if grade is not None else None
        raw = (
            manual
            if manual is not None
            else (None if result.verdict == Verdict.PENDING_MANUAL else result.score)
        )
        questions.append(
            {
                "key": result.question_key,
                "score": raw,
                "max_score": result.max_score,
                "verdict": _verdict(result.max_score, result.verdict, manual),
                "graded_by_person": grade is not None,
            }
        )
    held = grades_held(session, facts)
    pending_manual = any(question["score"] is None for question in questions)
    gradebook: dict[str, Any] | None = None
    if held:
        # Held grades reach no LMS (docs/lms.md): the event says a grading happened, not its result.
        for question in questions:
            question["score"] = question["verdict"] = None
    else:
        counted = counted_total(session, facts.course, facts.assignment, facts.user_id)
        gradebook = {
            "score": counted.score,
            "max_score": counted.max_score,
            "pending_manual": counted.pending_manual,
        }
    data = {
        "submission_id": str(submission_id),
        "course": facts.course,
        "assignment": facts.assignment,
        "student": facts.student,
        "score": None if held else facts.score,
        "effective_score": None if held else _effective(facts.score, facts.late_penalty),
        "max_score": facts.max_score,
        "late_penalty": facts.late_penalty,
        # A TA still has to grade an answer: the LMS may show the score as provisional.
        "pending_manual": pending_manual,
        "grades_held": held,
        # The student's score for the assignment as the gradebook counts it (the policy's
        # `counts`, last or best, per question): what LTI passback sends. None while held.
        "gradebook": gradebook,
        "questions": questions,
    }
    payload = {"type": str(event_type), "timestamp": now.isoformat(), "data": data}
    event = repository.add_event(
        session,
        OutboxEvent(
            course_id=facts.course_id,
            event_type=str(event_type),
            submission_id=submission_id,
            payload=payload,
            created_at=now,
        ),
        subscribers,
        now,
    )
    repository.add_passbacks(session, event.id, passbacks, now)
    return event
