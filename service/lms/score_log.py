"""The staff's log of LTI score deliveries (the outbox's passbacks to the LMS gradebook) and its
redeliver action: the same shape and rules as a webhook subscription's delivery log
(service/lms/service.py), for the course as a whole.

A redeliver sends the stored score again with a fresh timestamp, which the platform takes as the
newest: so only the latest score of a (line item, student) may be redelivered (an older one would
overwrite a newer grade in the LMS), and none while the assignment's grades are held."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.errors import Conflict, NotFound
from service.lms import repository
from service.lms.schemas import ScoreDeliveryList, ScoreDeliveryView
from service.lms.service import grades_held, staff_course
from service.models import LtiScoreDelivery, utcnow
from service.models.lms import DeliveryStatus, OutboxEvent


def _view(delivery: LtiScoreDelivery, event: OutboxEvent, assignment: str) -> ScoreDeliveryView:
    score_given, score_maximum, _pending = repository.passback_score(event.payload)
    student = event.payload["data"].get("student")
    return ScoreDeliveryView(
        id=delivery.id,
        event_id=event.id,
        event_type=event.event_type,
        submission_id=event.submission_id,
        assignment=assignment,
        student=student if isinstance(student, str) else None,
        lms_user_id=delivery.lms_user_id,
        score_given=score_given,
        score_maximum=score_maximum,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == DeliveryStatus.PENDING else None,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


def list_score_deliveries(
    session: Session, principal: Principal, course_slug: str, before: int | None, limit: int
) -> ScoreDeliveryList:
    """The course's score deliveries, newest first: status (pending, delivered, dead), attempts,
    the platform's last status code and error, and when the next attempt is due."""
    course = staff_course(session, principal, course_slug, "see the course's LMS grade passback")
    items = [_view(*row) for row in repository.score_deliveries_of(session, course, before, limit)]
    return ScoreDeliveryList(items=items, next=items[-1].id if len(items) == limit else None)


def redeliver_score(
    session: Session, principal: Principal, course_slug: str, delivery_id: int
) -> ScoreDeliveryView:
    """Send the score again, now, on a fresh retry schedule (a dead one, or one the LMS lost)."""
    course = staff_course(session, principal, course_slug, "see the course's LMS grade passback")
    found = repository.score_delivery(session, course, delivery_id)
    if found is None:
        raise NotFound("No such score delivery in this course.")
    delivery, event = found[0], found[1]
    later = repository.later_score_delivery(session, delivery)
    if later is not None:
        raise Conflict(
            f"A newer score of this student was queued after it (delivery {later}): redeliver that one.",
            {"newer_delivery": later},
        )
    facts = None if event.submission_id is None else repository.submission_facts(session, event.submission_id)
    if facts is not None and grades_held(session, facts):
        raise Conflict("The assignment's grades are held: no score reaches the LMS until they are released.")
    repository.reset_delivery(session, LtiScoreDelivery, delivery_id, utcnow())
    session.expire_all()
    again = repository.score_delivery(session, course, delivery_id)
    assert again is not None  # read back in the same transaction
    return _view(*again)
