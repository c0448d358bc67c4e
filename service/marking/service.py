"""Marking: people's grades on answers. The queue of answers left to a TA, grades with rubric
items and overrides of automatic scores (optimistic concurrency: a stale version is a 409), the
append-only audit of every change, the Gradescope export and one student's history.

The rules (docs/grading-policy.md): an answer's raw score is the person's grade if there is one,
else the automatic score (a pending_manual answer without a grade has none); effective = raw times
(1 - the submission's late penalty), rounded to 6 places; submissions.score is the raw total."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from graders import GraderConfig, GradeResult, Verdict
from graders.manual import ManualConfig
from service.assignments.service import current_rules, resolve_access
from service.assignments.snapshots import QuestionSnapshot, get_snapshot
from service.auth.service import Principal
from service.courses.service import role_in, student_id
from service.errors import Conflict, Forbidden, NotFound, UnprocessableAnswer
from service.grading import service as grading
from service.lms.schemas import WebhookEvent
from service.lms.service import record_submission_event
from service.marking import repository
from service.marking.repository import SubmissionContext
from service.marking.schemas import (
    AuditEntryView,
    AuditList,
    GradeRequest,
    GradescopeResults,
    GradescopeTest,
    HistoryAnswer,
    HistorySubmission,
    ManualGradeView,
    ManualQueue,
    QueueItem,
    RubricItemView,
    RubricMark,
    StudentHistory,
)
from service.models import GradeAuditEntry, JobStatus, ManualGrade, ManualGradeKind, QuestionResult, utcnow
from service.submissions.hidden_checks import PublicPart, counted_score, public_part, public_total
from service.submissions.schemas import AppliedRubricItem, HiddenChecksView, SubmissionView
from service.submissions.service import get_submission, submission_status
from service.submissions.untrusted_json import unstorable_text

MAX_AUDIT_PER_SUBMISSION = 1_000


def effective(raw: float | None, late_penalty: float) -> float | None:
    return None if raw is None else round(raw * (1 - late_penalty), 6)


# ---- access ---------------------------------------------------------------------------------


def _staff_submission(session: Session, principal: Principal, submission_id: uuid.UUID) -> SubmissionContext:
    """The submission, for the staff of its course: outside the course it does not exist (404),
    a student of the course may not (403)."""
    context = _member_submission(session, principal, submission_id)
    role = role_in(session, context.course_id, principal.user_id)
    if role is None or not role.is_staff:
        raise Forbidden("Only TAs and instructors do this.")
    return context


def _member_submission(session: Session, principal: Principal, submission_id: uuid.UUID) -> SubmissionContext:
    context = repository.submission_context(session, submission_id)
    if context is None or role_in(session, context.course_id, principal.user_id) is None:
        raise NotFound("No such submission.")
    return context


def _question_of(session: Session, result: QuestionResult) -> QuestionSnapshot:
    """The question as the current result was graded against it (a regrade may bring a new
    version, with a changed rubric)."""
    snapshot = get_snapshot(session, repository.version_of_question(session, result.question_id))
    question = snapshot.question(result.question_key)
    if question is None:  # the result names its own version's question: cannot happen
        raise NotFound(f"No question {result.question_key!r}.")
    return question


def _rubric(config: GraderConfig) -> list[RubricItemView]:
    if not isinstance(config, ManualConfig):
        return []
    return [
        RubricItemView(item=number, description=item.description, points=item.points)
        for number, item in enumerate(config.rubric, start=1)
    ]


# ---- grading an answer --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GradedAnswer:
    view: SubmissionView
    # The grade's version after the change (the ETag); None once the grade is deleted.
    version: int | None


def parse_if_match(header: str | None) -> int | None:
    """The grade version in an `If-Match` header: `"3"`, `W/"3"` or `3`."""
    if header is None:
        return None
    tag = header.strip().removeprefix("W/").strip('"')
    # ASCII digits only: "²" (latin-1 in a header) is a str.isdigit() that int() refuses.
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 9:
        raise UnprocessableAnswer('If-Match must name a grade version, e.g. "3" (the ETag of the grade).')
    return int(tag)


def _expected_version(body_version: int | None, if_match: int | None) -> int | None:
    if body_version is not None and if_match is not None and body_version != if_match:
        raise UnprocessableAnswer("The body's version and If-Match name different versions.")
    return body_version if body_version is not None else if_match


def _applied_rubric(rubric: list[RubricItemView], marks: list[RubricMark]) -> list[AppliedRubricItem]:
    by_item: dict[int, RubricMark] = {}
    for mark in marks:
        if mark.item > len(rubric):
            raise UnprocessableAnswer(
                f"No rubric item {mark.item}: this question has {len(rubric)}.",
                details={"rubric": [item.model_dump() for item in rubric]},
            )
        if mark.item in by_item:
            raise UnprocessableAnswer(f"Rubric item {mark.item} is given twice.")
        by_item[mark.item] = mark
    return [
        AppliedRubricItem(
            **item.model_dump(),
            applied=item.item in by_item and by_item[item.item].applied,
            comment=by_item[item.item].comment if item.item in by_item else "",
        )
        for item in rubric
    ]


def _raw(result: QuestionResult, grade: ManualGrade | None) -> float | None:
    if grade is not None:
        return grade.score
    return None if result.verdict == Verdict.PENDING_MANUAL else result.score


def _verdict(result: QuestionResult, grade: ManualGrade | None) -> Verdict:
    """The answer's verdict as the submission view and the gradebook show it: a person's grade
    decides it (correct at full points, incorrect at 0, partial between), else the grader's."""
    if grade is None:
        return result.verdict
    fraction = grade.score / result.max_score if result.max_score > 0 else 1.0
    return GradeResult.from_fraction(fraction, "").verdict


def _grade_view(session: Session, grade: ManualGrade) -> ManualGradeView:
    graded_by = repository.usernames(session, [grade.graded_by_user_id]).get(grade.graded_by_user_id, "")
    return _grade_view_with(grade, graded_by)


def _grade_view_with(grade: ManualGrade, graded_by: str) -> ManualGradeView:
    return ManualGradeView(
        kind=grade.kind.value,
        score=grade.score,
        feedback=grade.feedback,
        rubric=[AppliedRubricItem.model_validate(item) for item in grade.rubric],
        reason=grade.reason,
        version=grade.version,
        graded_by=graded_by,
        graded_at=grade.graded_at,
    )


def _stale(session: Session, submission_id: uuid.UUID, question_key: str, expected: int | None) -> Conflict:
    current = repository.manual_grade(session, submission_id, question_key)
    if current is not None:
        repository.refresh(session, current)
    state = None if current is None else _grade_view(session, current).model_dump(mode="json")
    if current is None:
        message = "The grade this change was based on was deleted meanwhile."
    elif expected is None:
        message = (
            f"This answer was graded meanwhile (version {current.version}); send its version to change it."
        )
    else:
        message = f"The grade changed meanwhile: it is at version {current.version}, not {expected}."
    return Conflict(message, details={"current": state})


def grade_answer(
    session: Session,
    principal: Principal,
    submission_id: uuid.UUID,
    question_key: str,
    request: GradeRequest,
    if_match: str | None,
) -> GradedAnswer:
    """A person's grade for one answer: a pending_manual answer's score, or an override of an
    automatic one (which needs a reason). Audited; the submission's raw total follows."""
    context = _staff_submission(session, principal, submission_id)
    expected = _expected_version(request.version, parse_if_match(if_match))
    if context.status is not JobStatus.DONE:
        raise Conflict("This submission has not been graded yet.")
    result = repository.current_result(session, submission_id, question_key)
    if result is None:
        raise NotFound(f"The submission has no answer to {question_key!r}.")
    question = _question_of(session, result)
    kind = ManualGradeKind.MANUAL if question.kind == "manual" else ManualGradeKind.OVERRIDE
    if kind is ManualGradeKind.OVERRIDE and not request.reason.strip():
        raise UnprocessableAnswer(
            f"{question_key} is graded automatically: an override needs a reason.",
            details={"reason": "required for an override"},
        )
    # A bare score applies no rubric: the student is not shown every item as missed.
    rubric = _applied_rubric(_rubric(question.config), request.rubric) if request.rubric else []
    if request.score is None and not request.rubric:
        raise UnprocessableAnswer("Give a score, or the rubric items applied.")
    score = (
        request.score
        if request.score is not None
        else round(sum(item.points for item in rubric if item.applied), 6)
    )
    if score > result.max_score:
        raise UnprocessableAnswer(f"The score must lie between 0 and {result.max_score:g}.")

    existing = repository.manual_grade(session, submission_id, question_key)
    old_score = _raw(result, existing)
    values: dict[str, Any] = {
        "kind": kind,
        "score": score,
        "feedback": request.feedback,
        "rubric": [item.model_dump() for item in rubric],
        "reason": request.reason,
        "graded_by_user_id": principal.user_id,
        "graded_at": utcnow(),
    }
    if existing is None:
        if expected is not None:
            raise _stale(session, submission_id, question_key, expected)
        if not repository.insert_manual_grade(
            session, ManualGrade(submission_id=submission_id, question_key=question_key, version=1, **values)
        ):
            raise _stale(session, submission_id, question_key, expected)
        version = 1
    else:
        if expected is None or not repository.update_manual_grade(session, existing.id, expected, values):
            raise _stale(session, submission_id, question_key, expected)
        version = expected + 1
    repository.add_audit(
        session,
        GradeAuditEntry(
            course_id=context.course_id,
            submission_id=submission_id,
            question_key=question_key,
            actor_user_id=principal.user_id,
            action=kind.value,
            old_score=old_score,
            new_score=score,
            reason=request.reason,
            details={
                "version": version,
                "feedback": request.feedback,
                "rubric_applied": [item.item for item in rubric if item.applied],
                "auto_score": None if result.verdict == Verdict.PENDING_MANUAL else result.score,
            },
            created_at=utcnow(),
        ),
    )
    grading.refresh_scores(session, [submission_id])
    record_submission_event(session, submission_id, WebhookEvent.GRADE_CHANGED)
    return GradedAnswer(get_submission(session, principal, submission_id), version)


def delete_grade(
    session: Session,
    principal: Principal,
    submission_id: uuid.UUID,
    question_key: str,
    reason: str,
    if_match: str | None,
) -> GradedAnswer:
    """Take a person's grade back: the automatic result governs again (a manual answer waits for
    a TA again). Needs a reason; audited."""
    context = _staff_submission(session, principal, submission_id)
    expected = parse_if_match(if_match)
    if not reason.strip():
        raise UnprocessableAnswer("Deleting a grade needs a reason.", details={"reason": "required"})
    if (problem := unstorable_text(reason)) is not None:  # PostgreSQL refuses it: a 500, not a 422
        raise UnprocessableAnswer(f"The reason {problem}.", details={"reason": problem})
    existing = repository.manual_grade(session, submission_id, question_key)
    result = repository.current_result(session, submission_id, question_key)
    if existing is None or result is None:
        raise NotFound(f"No grade by a person on {question_key!r} of this submission.")
    version = existing.version if expected is None else expected
    old_score = existing.score
    if not repository.delete_manual_grade(session, existing.id, version):
        raise _stale(session, submission_id, question_key, expected)
    repository.add_audit(
        session,
        GradeAuditEntry(
            course_id=context.course_id,
            submission_id=submission_id,
            question_key=question_key,
            actor_user_id=principal.user_id,
            action="cleared",
            old_score=old_score,
            new_score=_raw(result, None),
            reason=reason,
            details={"cleared_version": version, "kind": existing.kind.value},
            created_at=utcnow(),
        ),
    )
    grading.refresh_scores(session, [submission_id])
    record_submission_event(session, submission_id, WebhookEvent.GRADE_CHANGED)
    return GradedAnswer(get_submission(session, principal, submission_id), None)


# ---- the queue ------------------------------------------------------------------------------


def _encode_cursor(submission_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(submission_id.bytes).decode().rstrip("=")


def _decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise UnprocessableAnswer("`after` is not a cursor this queue gave out.") from None


def list_queue(
    session: Session,
    principal: Principal,
    course_slug: str,
    slug: str,
    question_key: str,
    *,
    limit: int,
    after: str | None,
    include_graded: bool,
) -> ManualQueue:
    access = resolve_access(session, principal, course_slug, slug)
    if not access.role.is_staff:
        raise Forbidden("Only TAs and instructors see the grading queue.")
    if access.snapshot.question(question_key) is None:
        raise NotFound(f"No question {question_key!r} in {slug!r}.")
    position = None
    if after is not None:
        position = repository.submission_order(session, _decode_cursor(after))
        if position is None:
            raise UnprocessableAnswer("`after` is not a cursor this queue gave out.")
    rows = repository.manual_queue(
        session, access.snapshot.assignment_id, question_key, include_graded, position, limit
    )
    graders = repository.usernames(session, [row[2].graded_by_user_id for row in rows if row[2]])
    items = [
        QueueItem(
            submission_id=submission.id,
            student=student,
            submitted_at=submission.created_at,
            answer=_answer_text(submission.answers.get(question_key)),
            max_score=max_score,
            # The rubric the grade is checked against: that of the version the answer was graded in.
            rubric=_rubric_of_version(session, version_id, question_key),
            grade=None
            if grade is None
            else _grade_view_with(grade, graders.get(grade.graded_by_user_id, "")),
        )
        for submission, student, grade, version_id, max_score in rows
    ]
    return ManualQueue(
        course=course_slug,
        assignment=slug,
        question=question_key,
        items=items,
        next=_encode_cursor(items[-1].submission_id) if len(items) == limit else None,
    )


def _rubric_of_version(session: Session, version_id: int, question_key: str) -> list[RubricItemView]:
    question = get_snapshot(session, version_id).question(question_key)
    return [] if question is None else _rubric(question.config)


def _answer_text(answer: object) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("text"), str):
        return str(answer["text"])
    return ""


# ---- the audit log --------------------------------------------------------------------------


def _audit_views(session: Session, entries: Sequence[tuple[GradeAuditEntry, str]]) -> list[AuditEntryView]:
    actors = repository.usernames(session, list({entry.actor_user_id for entry, _ in entries}))
    return [
        AuditEntryView(
            id=entry.id,
            submission_id=entry.submission_id,
            student=student,
            question=entry.question_key,
            actor=actors.get(entry.actor_user_id, ""),
            action=entry.action,
            old_score=entry.old_score,
            new_score=entry.new_score,
            reason=entry.reason,
            details=entry.details,
            created_at=entry.created_at,
        )
        for entry, student in entries
    ]


def submission_audit(session: Session, principal: Principal, submission_id: uuid.UUID) -> AuditList:
    context = _staff_submission(session, principal, submission_id)
    entries = repository.audit_of_submission(session, submission_id, MAX_AUDIT_PER_SUBMISSION)
    return AuditList(items=_audit_views(session, [(entry, context.student) for entry in entries]))


def course_audit(
    session: Session, principal: Principal, course_slug: str, limit: int, after: int | None
) -> AuditList:
    course_id = _staff_course(session, principal, course_slug)
    rows = repository.audit_of_course(session, course_id, after, limit)
    items = _audit_views(session, [(entry, student) for entry, student in rows])
    return AuditList(items=items, next=items[-1].id if len(items) == limit else None)


def _staff_course(session: Session, principal: Principal, course_slug: str) -> int:
    course_id = repository.course_id(session, course_slug)
    role = None if course_id is None else role_in(session, course_id, principal.user_id)
    if course_id is None or role is None:
        raise NotFound(f"No course {course_slug!r}.")
    if not role.is_staff:
        raise Forbidden("Only TAs and instructors read the audit log.")
    return course_id


# ---- exports and history ----------------------------------------------------------------------


HIDDEN_PENDING_NOTE = "Hidden checks are graded too; the score counts them once the grades are released."


def results_json(session: Session, principal: Principal, submission_id: uuid.UUID) -> GradescopeResults:
    """The submission in Gradescope's results.json format; for staff, and for its student once
    grades are visible to students."""
    context = _member_submission(session, principal, submission_id)
    submission = context.submission
    role = role_in(session, context.course_id, principal.user_id)
    is_staff = role is not None and role.is_staff
    rules = current_rules(session, get_snapshot(session, submission.assignment_version_id))
    visible = rules.grades_visible_to_students
    if not is_staff:
        if submission.user_id != principal.user_id:
            raise Forbidden("This submission belongs to another student.")
        if not visible:
            raise Forbidden("The grades of this assignment are held until the staff release them.")
    if context.status is not JobStatus.DONE:
        raise Conflict(f"This submission is {submission_status(context.status)}, not graded.")
    results = repository.current_results(session, [submission.id])
    grades = {grade.question_key: grade for grade in repository.manual_grades_of(session, [submission.id])}
    # A student reads only the public part of answers with hidden checks until the release.
    conceal = not is_staff and not rules.hidden_results_visible
    tests = []
    for result in results:
        grade = grades.get(result.question_key)
        part = public_part(result) if conceal else None
        raw = _raw(result, grade) if part is None else part.score
        output = result.feedback if grade is None else grade.feedback or result.feedback
        if part is not None:
            output = part.feedback
        elif raw is None:
            output = "Waiting for a TA to grade this answer."
        tests.append(
            GradescopeTest(
                name=result.question_key,
                score=raw or 0.0,
                max_score=result.max_score,
                output=output,
                visibility="visible" if visible else "after_published",
            )
        )
    raw_total = sum(test.score for test in tests)
    penalty = submission.late_penalty
    notes = [f"Late: {penalty * 100:g} % taken from every score."] if penalty > 0 else []
    if conceal and any(public_part(result) is not None for result in results):
        notes.append(HIDDEN_PENDING_NOTE)
    return GradescopeResults(
        score=round(raw_total * (1 - penalty), 6),
        output=" ".join(notes),
        visibility="visible" if visible else "after_published",
        tests=tests,
    )


def student_history(
    session: Session, principal: Principal, course_slug: str, slug: str, username: str, limit: int
) -> StudentHistory:
    """A student's submissions to an assignment with each answer's raw and effective score and the
    person's grade; for the course's staff, and for the student themself (scores only once grades
    are visible to students)."""
    access = resolve_access(session, principal, course_slug, slug)
    user_id = student_id(session, access.snapshot.course_id, username)
    if not access.role.is_staff and user_id != principal.user_id:
        raise Forbidden("Students see only their own history.")
    if user_id is None:
        raise NotFound(f"No student {username!r} in course {course_slug!r}.")
    rules = current_rules(session, access.snapshot)
    visible = rules.grades_visible_to_students
    show_scores = access.role.is_staff or visible
    # A student sees only the public part of answers with hidden checks until the release.
    conceal = show_scores and not access.role.is_staff and not rules.hidden_results_visible
    rows = repository.history(session, access.snapshot.assignment_id, user_id, limit)
    ids = [submission.id for submission, _, _ in rows]
    results: dict[uuid.UUID, list[QuestionResult]] = {}
    for result in repository.current_results(session, ids):
        results.setdefault(result.submission_id, []).append(result)
    grades = {(g.submission_id, g.question_key): g for g in repository.manual_grades_of(session, ids)}
    graders = repository.usernames(session, list({g.graded_by_user_id for g in grades.values()}))
    submissions = []
    for submission, status, version in rows:
        questions = {}
        concealed: list[tuple[float, float]] = []
        for result in results.get(submission.id, []):
            grade = grades.get((submission.id, result.question_key))
            part = public_part(result) if conceal else None
            if part is not None:
                concealed.append((counted_score(result, None if grade is None else grade.score), part.score))
                questions[result.question_key] = _public_history_answer(result, part, submission.late_penalty)
                continue
            raw = _raw(result, grade)
            manual = (
                None if grade is None else _grade_view_with(grade, graders.get(grade.graded_by_user_id, ""))
            )
            if manual is not None and not access.role.is_staff:
                manual = manual.model_copy(update={"reason": ""})  # staff's note, not the student's
            questions[result.question_key] = HistoryAnswer(
                verdict=_verdict(result, grade) if show_scores else None,
                auto_score=None
                if result.verdict == Verdict.PENDING_MANUAL or not show_scores
                else result.score,
                raw=raw if show_scores else None,
                effective=effective(raw, submission.late_penalty) if show_scores else None,
                max_score=result.max_score,
                feedback=(grade.feedback if grade else result.feedback) if show_scores else None,
                manual=manual if show_scores else None,
            )
        score = public_total(submission.score, concealed) if show_scores else None
        submissions.append(
            HistorySubmission(
                id=submission.id,
                assignment_version=version,
                status=submission_status(status),
                created_at=submission.created_at,
                late_seconds=submission.late_seconds,
                late_penalty=submission.late_penalty,
                score=score,
                effective_score=effective(score, submission.late_penalty),
                max_score=submission.max_score,
                questions=questions,
                hidden_pending=bool(concealed),
            )
        )
    return StudentHistory(
        course=course_slug, assignment=slug, student=username, grades_visible=visible, submissions=submissions
    )


def _public_history_answer(result: QuestionResult, part: PublicPart, late_penalty: float) -> HistoryAnswer:
    """A student's history entry for an answer whose hidden checks are held back: the public
    checks' part only (a person's grade of the answer waits with the hidden checks)."""
    return HistoryAnswer(
        verdict=part.verdict,
        auto_score=part.score,
        raw=part.score,
        effective=effective(part.score, late_penalty),
        max_score=result.max_score,
        feedback=part.feedback,
        manual=None,
        hidden=HiddenChecksView(points=part.hidden_points),
    )
