"""The course's policies for its assignments (docs/grading-policy.md): the override of the
material's policy, per-student extensions, the release of held grades, what a submission may do
(open, due, cutoff, attempts) and the lateness stored on each submission."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from service.assignments.policy import Lateness, Policy, lateness
from service.assignments.service import (
    AssignmentAccess,
    AssignmentRules,
    current_rules,
    latest_snapshot,
    resolve_access,
    rules_in_force,
)
from service.assignments.snapshots import VersionSnapshot
from service.auth.service import Principal
from service.courses.service import student_id
from service.errors import (
    AttemptLimitReached,
    DeadlinePassed,
    Forbidden,
    NotFound,
    NotOpen,
    UnprocessableAnswer,
)
from service.lms.service import record_grade_changes, record_release, release_reaches_lms
from service.models import Extension, utcnow
from service.policies import repository
from service.policies.schemas import ExtensionList, ExtensionSet, ExtensionView, LatenessView, PolicyView

# Instants outside these years are refused (422): far ones overflow when shifted to a zone or by a
# cutoff, and no course runs then.
_EARLIEST_YEAR = 1971
_LATEST_YEAR = 9000


def _staff_access(session: Session, principal: Principal, course: str, slug: str) -> AssignmentAccess:
    access = resolve_access(session, principal, course, slug)
    if not access.role.is_staff:
        raise Forbidden("Only the course's TAs and instructors change its policies.")
    return access


def _view(
    session: Session, snapshot: VersionSnapshot, course: str, slug: str, user_id: int | None = None
) -> PolicyView:
    rules = current_rules(session, snapshot)
    extension = None if user_id is None else repository.extension_of(session, snapshot.assignment_id, user_id)
    return PolicyView(
        course=course,
        assignment=slug,
        policy=rules.policy,
        source="course" if rules.overridden else "material",
        released_at=rules.released_at,
        grades_visible_to_students=rules.grades_visible_to_students,
        hidden_results_visible=rules.hidden_results_visible,
        your_due_at=None if extension is None else _in_zone(extension.due_at, rules.policy),
    )


def policy_view(session: Session, principal: Principal, course: str, slug: str) -> PolicyView:
    """The policy in force; every member of the course may read it (students see their extension)."""
    access = resolve_access(session, principal, course, slug)
    own = None if access.role.is_staff else principal.user_id
    return _view(session, access.snapshot, course, slug, own)


def set_policy(session: Session, principal: Principal, course: str, slug: str, policy: Policy) -> PolicyView:
    """Replace the assignment's policy as a whole (the material's no longer applies) and measure
    every submission to it again."""
    access = _staff_access(session, principal, course, slug)
    _check_policy(access.snapshot, policy)
    row = repository.policy_row_for_update(session, access.snapshot.assignment_id, principal.user_id)
    row.policy = policy.as_json()
    repository.flush(session)
    recompute_lateness(session, access.snapshot)
    return _view(session, access.snapshot, course, slug)


def reset_policy(session: Session, principal: Principal, course: str, slug: str) -> PolicyView:
    """Drop the course's policy: the material's applies again (the release stays as it is)."""
    access = _staff_access(session, principal, course, slug)
    row = repository.policy_row_for_update(session, access.snapshot.assignment_id, principal.user_id)
    row.policy = None
    repository.flush(session)
    recompute_lateness(session, access.snapshot)
    return _view(session, access.snapshot, course, slug)


def set_release(session: Session, principal: Principal, course: str, slug: str, released: bool) -> PolicyView:
    """Release held grades to students (the first release's time is kept), or withhold them again."""
    access = _staff_access(session, principal, course, slug)
    row = repository.policy_row_for_update(session, access.snapshot.assignment_id, principal.user_id)
    was_visible = current_rules(session, access.snapshot).grades_visible_to_students
    newly_released = released and row.released_at is None
    if not released:
        row.released_at = None
    elif row.released_at is None:
        row.released_at = utcnow()
    repository.flush(session)
    if newly_released and release_reaches_lms(session, access.snapshot.assignment_id, not was_visible):
        # The webhooks and the LMS gradebook got no score while held (or hidden): each student's now.
        record_release(session, access.snapshot.assignment_id)
    return _view(session, access.snapshot, course, slug)


def _check_policy(snapshot: VersionSnapshot, policy: Policy) -> None:
    problems: dict[str, str] = {}
    known = {question.key for question in snapshot.questions}
    for key in policy.question_attempts:
        if key not in known:
            problems[f"question_attempts.{key[:64]}"] = (
                f"no such question; questions are {', '.join(sorted(known))}"
            )
    for name, moment in (("opens_at", policy.opens_at), ("due_at", policy.due_at)):
        if moment is not None and (problem := _out_of_range(moment)) is not None:
            problems[name] = problem
    if problems:
        raise UnprocessableAnswer("The policy cannot be accepted.", details=problems)


def _out_of_range(moment: datetime) -> str | None:
    if _EARLIEST_YEAR <= moment.year <= _LATEST_YEAR:
        return None
    return f"must lie between the years {_EARLIEST_YEAR} and {_LATEST_YEAR}"


def _in_zone(moment: datetime, policy: Policy) -> datetime:
    return moment.astimezone(ZoneInfo(policy.timezone))


def _student(session: Session, snapshot: VersionSnapshot, username: str) -> int:
    user_id = student_id(session, snapshot.course_id, username)
    if user_id is None:
        raise NotFound(f"No student {username[:100]!r} in this course.")
    return user_id


def _extension_view(
    extension: Extension, student: str, granted_by: str | None, policy: Policy
) -> ExtensionView:
    return ExtensionView(
        student=student,
        due_at=_in_zone(extension.due_at, policy),
        reason=extension.reason,
        granted_by=granted_by,
        created_at=extension.created_at,
    )


def list_extensions(session: Session, principal: Principal, course: str, slug: str) -> ExtensionList:
    access = _staff_access(session, principal, course, slug)
    policy = current_rules(session, access.snapshot).policy
    rows = repository.extensions_of(session, access.snapshot.assignment_id)
    return ExtensionList(
        course=course,
        assignment=slug,
        items=[_extension_view(extension, student, granter, policy) for extension, student, granter in rows],
    )


def set_extension(
    session: Session, principal: Principal, course: str, slug: str, username: str, body: ExtensionSet
) -> ExtensionView:
    """Give one student their own due time (the late rule and its cutoff count from it) and measure
    their submissions again."""
    access = _staff_access(session, principal, course, slug)
    snapshot = access.snapshot
    user_id = _student(session, snapshot, username)
    policy = current_rules(session, snapshot).policy
    due_at = (
        body.due_at
        if body.due_at.tzinfo is not None
        else body.due_at.replace(tzinfo=ZoneInfo(policy.timezone))
    )
    if (problem := _out_of_range(due_at)) is not None:
        raise UnprocessableAnswer("The extension cannot be accepted.", details={"due_at": problem})
    extension = repository.extension_of(session, snapshot.assignment_id, user_id)
    if extension is None:
        extension = Extension(assignment_id=snapshot.assignment_id, user_id=user_id, created_at=utcnow())
        repository.add_extension(session, extension)
    extension.due_at = due_at
    extension.reason = body.reason
    extension.granted_by_user_id = principal.user_id
    repository.flush(session)
    recompute_lateness(session, snapshot, user_id)
    return _extension_view(extension, username, principal.username, policy)


def delete_extension(session: Session, principal: Principal, course: str, slug: str, username: str) -> None:
    access = _staff_access(session, principal, course, slug)
    user_id = _student(session, access.snapshot, username)
    extension = repository.extension_of(session, access.snapshot.assignment_id, user_id)
    if extension is None:
        raise NotFound(f"{username[:100]!r} has no extension on this assignment.")
    repository.delete_extension(session, extension)
    repository.flush(session)
    recompute_lateness(session, access.snapshot, user_id)


def _measure(rules: AssignmentRules, created_at: datetime, due_at: datetime | None) -> tuple[int, float]:
    """(late_seconds, penalty) of an accepted submission under the rules now in force. One
    accepted before a later policy opened the assignment is on time; one past the new cutoff (or
    late without a late rule) loses everything."""
    measured = lateness(rules.policy, created_at, due_at)
    opens_at = rules.policy.opens_at
    if opens_at is not None and created_at < opens_at:
        return 0, 0.0
    return measured.late_seconds, measured.penalty


def recompute_lateness(session: Session, snapshot: VersionSnapshot, user_id: int | None = None) -> int:
    """Measure again the students' submissions to the snapshot's assignment (one student's if
    user_id is given) after the policy or an extension changed; returns how many changed. A
    changed penalty changes the effective score: the LMS hears `grade.changed` (outbound webhooks)."""
    rules = current_rules(session, snapshot)
    extensions = repository.extension_due_times(session, snapshot.assignment_id)
    changes = []
    rescored: list[uuid.UUID] = []
    for submission_id, owner, created_at, late_seconds, penalty in repository.student_submission_times(
        session, snapshot.course_id, snapshot.assignment_id, user_id
    ):
        new_seconds, new_penalty = _measure(rules, created_at, extensions.get(owner))
        if (new_seconds, new_penalty) != (late_seconds, penalty):
            changes.append({"id": submission_id, "late_seconds": new_seconds, "late_penalty": new_penalty})
            if new_penalty != penalty:  # only late_seconds moved: the same scores, nothing to tell
                rescored.append(submission_id)
    repository.set_lateness(session, changes)
    record_grade_changes(session, snapshot.course_id, rescored)
    return len(changes)


def remeasure_after_load(session: Session, course_slug: str, slug: str) -> int:
    """A new version of the material was loaded: its `[policy]` (the one in force unless the course
    set its own) may move the deadline or change the late rule, so every student's submission to
    the assignment is measured again; returns how many changed."""
    return recompute_lateness(session, latest_snapshot(session, course_slug, slug))


def admit(
    session: Session,
    snapshot: VersionSnapshot,
    user_id: int,
    is_staff: bool,
    question_keys: list[str],
    now: datetime,
) -> Lateness:
    """May this student submit answers to these questions now? Refuses before the assignment opens
    (403 not_open), after the due time without a late rule or past the cutoff (403
    deadline_passed), and beyond an attempt limit (409 attempt_limit_reached). Returns the lateness
    to store. Staff submissions are test runs: never refused, never late."""
    if is_staff:
        return Lateness(0, 0.0)
    stored, due_at = repository.admission_facts(session, snapshot.assignment_id, user_id)
    policy = rules_in_force(snapshot, stored).policy
    measured = lateness(policy, now, due_at)
    if measured.refused is not None:
        if policy.opens_at is not None and now < policy.opens_at:
            raise NotOpen(
                f"Not open yet: {measured.refused}.",
                details={"opens_at": _in_zone(policy.opens_at, policy).isoformat()},
            )
        raise DeadlinePassed(
            f"Submissions are closed: {measured.refused}.",
            details={"due_at": _in_zone(due_at or policy.due_at or now, policy).isoformat()},
        )
    _check_attempts(session, snapshot, policy, user_id, question_keys)
    return measured


def _check_attempts(
    session: Session, snapshot: VersionSnapshot, policy: Policy, user_id: int, question_keys: list[str]
) -> None:
    limited = [key for key in question_keys if policy.attempt_limit(key) is not None]
    if not limited and policy.max_submissions is None:
        return
    # Counted and then stored under one lock: two concurrent submissions cannot both take the last.
    repository.lock_student_attempts(session, user_id)
    used, submissions = repository.used_attempts(session, snapshot.assignment_id, user_id)
    details: dict[str, object] = {}
    questions = {}
    for key in limited:
        limit = policy.attempt_limit(key)
        if limit is not None and used[key] >= limit:
            questions[key] = {"limit": limit, "used": used[key]}
    if questions:
        details["questions"] = questions
    if policy.max_submissions is not None and submissions >= policy.max_submissions:
        details["submissions"] = {"limit": policy.max_submissions, "used": submissions}
    if details:
        what = ", ".join(questions) if questions else "this assignment"
        raise AttemptLimitReached(
            f"No attempts left for {what} (answers graded invalid or error use none).", details=details
        )


def lateness_view(
    session: Session, snapshot: VersionSnapshot, user_id: int, late_seconds: int, penalty: float
) -> LatenessView:
    """The stored lateness of a student's submission, explained."""
    policy = current_rules(session, snapshot).policy
    extension = repository.extension_of(session, snapshot.assignment_id, user_id)
    due_at = extension.due_at if extension is not None else policy.due_at
    return LatenessView(
        late_seconds=late_seconds,
        penalty=penalty,
        due_at=None if due_at is None else _in_zone(due_at, policy),
        extended=extension is not None,
        why=explain(policy, late_seconds, penalty),
    )


def explain(policy: Policy, late_seconds: int, penalty: float) -> str:
    """One line for the student: "on time", "2 days started late: -20 %", ..."""
    if late_seconds <= 0:
        return "on time"
    taken = f"-{round(penalty * 100, 4):g} %"
    rule = policy.late
    if rule is None:
        return f"{_duration(late_seconds)} late, after the deadline: {taken}"
    if rule.cutoff_hours is not None and late_seconds > rule.cutoff_hours * 3600:
        return f"{_duration(late_seconds)} late, past the cutoff: {taken}"
    periods = math.ceil(late_seconds / (rule.period_hours * 3600))
    unit = {24.0: "day", 1.0: "hour", 168.0: "week"}.get(
        rule.period_hours, f"period of {rule.period_hours:g} h"
    )
    plural = "s" if periods != 1 else ""
    if unit.startswith("period"):
        unit_text = f"period{plural} of {rule.period_hours:g} h"
    else:
        unit_text = f"{unit}{plural}"
    return f"{periods} {unit_text} started late: {taken}"


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    shown = " ".join(part for part in parts if part)
    return shown or f"{secs} s"
