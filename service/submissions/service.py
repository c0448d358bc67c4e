from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.orm import Session

from graders import GradeResult
from service.assignments.policy import Lateness
from service.assignments.service import current_rules, resolve_access
from service.assignments.snapshots import VersionSnapshot, get_snapshot
from service.auth.service import Principal
from service.config import Settings
from service.courses.service import role_in
from service.errors import Conflict, Forbidden, NotFound, UnprocessableAnswer
from service.grading import service as grading
from service.models import (
    GradingJob,
    JobStatus,
    ManualGrade,
    QuestionResult,
    Submission,
    SubmissionFile,
    utcnow,
)
from service.policies import service as policies
from service.rate_limits import service as rate_limits
from service.submissions import repository
from service.submissions.hidden_checks import PublicPart, counted_score, public_part, public_total
from service.submissions.schemas import (
    AppliedRubricItem,
    AssignmentActivity,
    DaySubmissions,
    GradingHistory,
    GradingRunView,
    HiddenChecksView,
    PersonGradeView,
    QuestionResultView,
    ResultRevisionView,
    SubmissionAccepted,
    SubmissionCreate,
    SubmissionList,
    SubmissionStatus,
    SubmissionSummary,
    SubmissionView,
    UploadedFile,
)
from service.submissions.upload_storage import make_room_for_uploads

MAX_IDEMPOTENCY_KEY_LENGTH = 200

_STATUS_OF_JOB: dict[JobStatus, SubmissionStatus] = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.DONE: "graded",
    JobStatus.ERROR: "error",
}


def submission_status(job_status: JobStatus) -> SubmissionStatus:
    return _STATUS_OF_JOB[job_status]


def _request_hash(course_slug: str, slug: str, answers: Mapping[str, Any]) -> str:
    # The course is part of the request: a key reused for another course's hw5 is a conflict, not
    # a replay of the first course's submission.
    canonical = json.dumps(
        {"course": course_slug, "assignment": slug, "answers": answers}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewSubmission:
    """A student's request to submit, as the route read it; nothing in it is checked yet."""

    principal: Principal
    course: str
    assignment: str
    body: SubmissionCreate
    idempotency_key: str | None = None
    files: Sequence[UploadedFile] = ()


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The request against its assignment: the answers with a reference for each file, hashed."""

    snapshot: VersionSnapshot
    is_staff: bool
    answers: dict[str, Any]
    request_hash: str


@dataclass(frozen=True, slots=True)
class StoredSubmission:
    """A submission as the request that stored it (or replayed it by its Idempotency-Key) answers it."""

    id: uuid.UUID
    created_at: datetime
    job_id: int
    job_status: JobStatus


def accept_submission(session: Session, settings: Settings, command: NewSubmission) -> SubmissionAccepted:
    stored = create_submission(session, settings, command)
    return SubmissionAccepted(
        id=stored.id,
        course=command.course,
        assignment=command.assignment,
        status=submission_status(stored.job_status),
        created_at=stored.created_at,
        url=f"/api/v1/submissions/{stored.id}",
    )


def create_submission(session: Session, settings: Settings, command: NewSubmission) -> StoredSubmission:
    """Store a submission, its uploaded files and its grading job in the caller's transaction;
    the workers hear of the job after the commit. A retry with the same Idempotency-Key (even
    one racing the first) gets the first submission back."""
    prepared = _prepare(session, command)
    if command.idempotency_key is not None:
        existing = repository.find_by_idempotency_key(
            session, command.principal.user_id, command.idempotency_key
        )
        if existing is not None:
            return _replay(session, existing, prepared.request_hash)
    now = utcnow()
    lateness = _validate(session, settings, command, prepared, now)
    return _store(session, settings, command, prepared, now, lateness)


def _prepare(session: Session, command: NewSubmission) -> _Prepared:
    access = resolve_access(session, command.principal, command.course, command.assignment)
    key = command.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise UnprocessableAnswer(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters.")
    # The answers hold a reference to each file (name, SHA-256, size); its bytes get their own row.
    answers = command.body.answers | {f.question_key: _file_reference(f) for f in command.files}
    request_hash = _request_hash(command.course, command.assignment, answers)
    return _Prepared(access.snapshot, access.role.is_staff, answers, request_hash)


def _validate(
    session: Session, settings: Settings, command: NewSubmission, prepared: _Prepared, now: datetime
) -> Lateness:
    """Refuse the submission (429, 422, 403 by the policy's times, 409 by its attempt limits, 413)
    before anything is stored; returns its lateness."""
    _enforce_rate_limit(session, settings, command.principal.user_id)
    snapshot = prepared.snapshot
    problems = _upload_problems(snapshot, command)
    if not prepared.answers:
        raise UnprocessableAnswer("The submission holds no answers.")
    for key, raw_answer in prepared.answers.items():
        question = snapshot.question(key)
        if question is None:
            problems[key] = _no_such_question(snapshot)
        elif key not in problems:
            try:
                question.grader.parse_answer(raw_answer)
            except ValidationError as error:
                problems[key] = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
                    for e in error.errors()[:5]
                )
    if problems:
        raise UnprocessableAnswer("Some answers cannot be accepted.", details=problems)
    lateness = policies.admit(
        session, snapshot, command.principal.user_id, prepared.is_staff, list(prepared.answers), now
    )
    make_room_for_uploads(session, settings, snapshot.course_id, command.principal.user_id, command.files)
    return lateness


def _store(
    session: Session,
    settings: Settings,
    command: NewSubmission,
    prepared: _Prepared,
    now: datetime,
    lateness: Lateness,
) -> StoredSubmission:
    submission_id = uuid.uuid4()
    raced = repository.insert_submission(
        session,
        {
            "id": submission_id,
            "assignment_version_id": prepared.snapshot.id,
            "user_id": command.principal.user_id,
            "answers": prepared.answers,
            "idempotency_key": command.idempotency_key,
            "request_hash": prepared.request_hash,
            "max_score": prepared.snapshot.max_score,
            "late_seconds": lateness.late_seconds,
            "late_penalty": lateness.penalty,
            "created_at": now,
        },
    )
    if raced is not None:  # a concurrent retry with the same Idempotency-Key won the race
        return _replay(session, raced, prepared.request_hash)
    repository.add_files(
        session,
        [
            SubmissionFile(
                submission_id=submission_id,
                question_key=upload.question_key,
                filename=upload.filename,
                # Hashed once, when the answers took their reference to this file.
                sha256=prepared.answers[upload.question_key]["sha256"],
                size=len(upload.content),
                content=upload.content,
                created_at=now,
            )
            for upload in command.files
        ],
    )
    job_id = grading.enqueue(session, settings, submission_id, now, prepared.snapshot.queue)
    return StoredSubmission(submission_id, now, job_id, JobStatus.QUEUED)


def _enforce_rate_limit(session: Session, settings: Settings, user_id: int) -> None:
    """At most AUTOGRADE_RATE_LIMIT_SUBMISSIONS per AUTOGRADE_RATE_LIMIT_WINDOW_SECONDS per student,
    counted from the submissions table itself."""
    rate_limits.enforce(
        session,
        user_id,
        rate_limits.SUBMISSION_LOCK_CLASS,
        settings.rate_limit_submissions,
        settings.rate_limit_window_seconds,
        lambda count: repository.newest_submission_times(session, user_id, count),
        "submissions",
    )


def _file_reference(upload: UploadedFile) -> dict[str, Any]:
    return {
        "name": upload.filename,
        "sha256": hashlib.sha256(upload.content).hexdigest(),
        "size": len(upload.content),
    }


def _no_such_question(snapshot: VersionSnapshot) -> str:
    return f"no such question; questions are {', '.join(q.key for q in snapshot.questions)}"


def _upload_problems(snapshot: VersionSnapshot, command: NewSubmission) -> dict[str, str]:
    """Problems with the uploads: a question whose grader takes files gets its answer as one file,
    which that grader checks; every other question takes its answer in `answers`."""
    problems: dict[str, str] = {}
    for key in command.body.answers:
        question = snapshot.question(key)
        if question is not None and question.grader.accepts_upload:
            problems[key] = (
                f"upload the {question.kind} as a file: multipart/form-data with a file field named {key}"
            )
    seen: set[str] = set()
    for upload in command.files:
        key = upload.question_key
        question = snapshot.question(key)
        if question is None:
            problems[key] = _no_such_question(snapshot)
        elif not question.grader.accepts_upload:
            problems[key] = f"this {question.kind} question takes its answer in `answers`, not as a file"
        elif key in seen:
            problems[key] = "more than one file for this question"
        elif (problem := question.grader.check_upload(upload.content)) is not None:
            problems[key] = problem
        seen.add(key)
    return problems


def _replay(session: Session, existing: Submission, request_hash: str) -> StoredSubmission:
    if existing.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was already used for a different submission.")
    job = repository.job_of(session, existing.id)
    return StoredSubmission(existing.id, existing.created_at, job.id, job.status)


@dataclass(frozen=True, slots=True)
class _Visible:
    submission: Submission
    job: GradingJob
    student: str
    course: str
    assignment: str
    is_staff: bool


def _visible_submission(session: Session, principal: Principal, submission_id: uuid.UUID) -> _Visible:
    """The submission with its job, student, course and assignment, and whether the caller is staff.

    Outside the course it does not exist (404); inside, another student's is forbidden (403).
    """
    found = repository.get_with_context(session, submission_id)
    if found is None:
        raise NotFound("No such submission.")
    submission, job, username, course_id, course_slug, slug = found
    role = role_in(session, course_id, principal.user_id)
    if role is None:
        raise NotFound("No such submission.")
    if submission.user_id != principal.user_id and not role.is_staff:
        raise Forbidden("This submission belongs to another student.")
    return _Visible(submission, job, username, course_slug, slug, role.is_staff)


def get_submission(session: Session, principal: Principal, submission_id: uuid.UUID) -> SubmissionView:
    visible = _visible_submission(session, principal, submission_id)
    submission, job, is_staff = visible.submission, visible.job, visible.is_staff
    snapshot = get_snapshot(session, submission.assignment_version_id)
    rules = current_rules(session, snapshot)
    # A student sees nothing of the grades an assignment holds back until the staff release them,
    # and only the public part of results with hidden checks until then.
    held = not is_staff and not rules.grades_visible_to_students
    conceal = not is_staff and not rules.hidden_results_visible
    results = [] if held else repository.results_of(session, submission.id)
    by_person = {} if held else repository.manual_grades_of(session, submission.id)
    questions: dict[str, QuestionResultView] = {}
    concealed: list[tuple[float, float]] = []
    for result in results:
        grade = by_person.get(result.question_key)
        part = public_part(result) if conceal else None
        if part is None:
            questions[result.question_key] = _result_view(result, grade, is_staff)
        else:
            questions[result.question_key] = _public_result_view(result, part)
            concealed.append((counted_score(result, None if grade is None else grade.score), part.score))
    score = None if held else public_total(submission.score, concealed)
    return SubmissionView(
        id=submission.id,
        course=visible.course,
        assignment=visible.assignment,
        assignment_version=snapshot.version,
        student=visible.student,
        status=submission_status(job.status),
        score=score,
        effective_score=_effective(score, submission.late_penalty),
        max_score=submission.max_score,
        grades_held=held,
        hidden_pending=bool(concealed),
        lateness=policies.lateness_view(
            session, snapshot, submission.user_id, submission.late_seconds, submission.late_penalty
        ),
        created_at=submission.created_at,
        graded_at=submission.graded_at,
        questions=questions,
        answers=submission.answers if is_staff else None,
        error=job.last_error if is_staff else None,
    )


def _effective(score: float | None, late_penalty: float) -> float | None:
    """The submission's score after the late rule (docs/grading-policy.md)."""
    return None if score is None else round(score * (1 - late_penalty), 6)


def _public_result_view(result: QuestionResult, part: PublicPart) -> QuestionResultView:
    """A student's view of an answer whose hidden checks are held back: the public checks' verdict,
    score and feedback. A person's grade of it waits with the hidden checks (it may rest on them)."""
    return QuestionResultView(
        verdict=part.verdict,
        score=part.score,
        max_score=result.max_score,
        feedback=part.feedback,
        hidden=HiddenChecksView(points=part.hidden_points),
    )


def _result_view(result: QuestionResult, grade: ManualGrade | None, is_staff: bool) -> QuestionResultView:
    """One answer's result as the caller may see it; a person's grade (service.marking) governs
    its verdict, score and feedback."""
    view = QuestionResultView(
        verdict=result.verdict,
        score=result.score,
        max_score=result.max_score,
        feedback=result.feedback,
        details=result.details if is_staff else None,
    )
    if grade is None:
        return view
    fraction = grade.score / result.max_score if result.max_score > 0 else 1.0
    return view.model_copy(
        update={
            "verdict": GradeResult.from_fraction(fraction, "").verdict,
            "score": grade.score,
            "feedback": grade.feedback or result.feedback,
            "person_grade": PersonGradeView(
                kind=grade.kind.value,
                rubric=[AppliedRubricItem.model_validate(item) for item in grade.rubric],
                version=grade.version if is_staff else None,
            ),
        }
    )


def list_submissions(
    session: Session, principal: Principal, course_slug: str, slug: str, limit: int, offset: int
) -> SubmissionList:
    access = resolve_access(session, principal, course_slug, slug)
    only_user = None if access.role.is_staff else principal.user_id
    rules = current_rules(session, access.snapshot)
    held = only_user is not None and not rules.grades_visible_to_students
    rows = repository.list_for_assignment(session, access.snapshot.course_id, slug, only_user, limit, offset)
    concealed: dict[uuid.UUID, list[tuple[float, float]]] = {}
    if only_user is not None and not held and not rules.hidden_results_visible:
        ids = [submission.id for submission, _, _ in rows]
        for result, grade_score in repository.results_with_hidden_checks(session, ids):
            part = public_part(result)
            if part is not None:
                counted = counted_score(result, grade_score)
                concealed.setdefault(result.submission_id, []).append((counted, part.score))
    items = []
    for submission, status, username in rows:
        hidden = concealed.get(submission.id, [])
        score = None if held else public_total(submission.score, hidden)
        items.append(
            SubmissionSummary(
                id=submission.id,
                student=username,
                status=submission_status(status),
                score=score,
                effective_score=_effective(score, submission.late_penalty),
                late_penalty=submission.late_penalty,
                grades_held=held,
                hidden_pending=bool(hidden),
                max_score=submission.max_score,
                created_at=submission.created_at,
            )
        )
    return SubmissionList(course=course_slug, assignment=slug, limit=limit, offset=offset, items=items)


# The timeline covers at most this many days, ending on the day of the newest submission: a term's
# worth, and a chart that stays legible (and a query that stays bounded) on an old assignment.
ACTIVITY_DAYS = 120


def assignment_activity(
    session: Session, principal: Principal, course_slug: str, slug: str
) -> AssignmentActivity:
    """Staff: the counts of an assignment's submissions by state, and how many came in each day."""
    access = resolve_access(session, principal, course_slug, slug)
    if not access.role.is_staff:
        raise Forbidden("Only TAs and instructors see an assignment's activity.")
    snapshot = access.snapshot
    zone = ZoneInfo(current_rules(session, snapshot).policy.timezone)
    counts = repository.status_counts(session, snapshot.assignment_id)
    first, last = repository.first_and_last_submission(session, snapshot.assignment_id)
    per_day: list[DaySubmissions] = []
    if first is not None and last is not None:
        last_day = last.astimezone(zone).date()
        first_day = max(first.astimezone(zone).date(), last_day - timedelta(days=ACTIVITY_DAYS - 1))
        since = datetime.combine(first_day, time.min, tzinfo=zone)
        by_day = Counter(
            moment.astimezone(zone).date()
            for moment in repository.submission_times(session, snapshot.assignment_id, since)
        )
        days = (last_day - first_day).days + 1
        per_day = [
            DaySubmissions(day=day, count=by_day[day])
            for day in (first_day + timedelta(days=offset) for offset in range(days))
        ]
    return AssignmentActivity(
        course=course_slug,
        assignment=slug,
        title=snapshot.title,
        version=snapshot.version,
        submissions=sum(counts.values()),
        graded=counts.get(JobStatus.DONE, 0),
        in_progress=counts.get(JobStatus.QUEUED, 0) + counts.get(JobStatus.RUNNING, 0),
        errors=counts.get(JobStatus.ERROR, 0),
        awaiting_manual=repository.answers_awaiting_a_person(session, snapshot.assignment_id),
        timezone=zone.key,
        per_day=per_day,
    )


def grading_history(session: Session, principal: Principal, submission_id: uuid.UUID) -> GradingHistory:
    """Staff: every grading run of the submission (attempts and times) and every revision of its
    automatic results, the older ones a regrade replaced included."""
    visible = _visible_submission(session, principal, submission_id)
    if not visible.is_staff:
        raise Forbidden("Only TAs and instructors see how a submission was graded.")
    return GradingHistory(
        runs=[
            GradingRunView(
                revision=job.revision,
                status=job.status.value,
                attempt=job.attempt,
                max_attempts=job.max_attempts,
                regrade=job.regrade_id,
                question=job.question_key,
                created_at=job.created_at,
                started_at=job.started_at,
                finished_at=job.finished_at,
                error=job.last_error,
            )
            for job in repository.jobs_of(session, submission_id)
        ],
        results=[
            ResultRevisionView(
                question=result.question_key,
                revision=result.revision,
                current=result.is_current,
                verdict=result.verdict,
                score=result.score,
                max_score=result.max_score,
                grader_version=result.grader_version,
                job_attempt=result.job_attempt,
                graded_at=result.graded_at,
            )
            for result in repository.all_results_of(session, submission_id)
        ],
    )
