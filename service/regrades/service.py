"""Regrades: a TA grades an assignment's submissions again, on the existing workers, after a new
version of the material was loaded (a fixed reference, a new tolerance).

A regrade is a Regrade row and one grading job per selected submission, created in the request's
transaction and announced after its commit. Each job writes the submission's next revision of
the results (the older rows stay, no longer current). Progress and the report of changed scores
are read from the jobs and the result revisions; nothing is kept twice.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from service.assignments.service import resolve_access
from service.auth.service import Principal
from service.config import Settings
from service.courses.service import role_in
from service.errors import Forbidden, NotFound, UnprocessableAnswer
from service.grading import service as grading
from service.models import Regrade, utcnow
from service.regrades import repository
from service.regrades.schemas import (
    RegradeChange,
    RegradeCreate,
    RegradeList,
    RegradeProgress,
    RegradeView,
)

# Unknown usernames named back in a 422, at most this many.
MAX_NAMED_UNKNOWN = 20


def start_regrade(
    session: Session,
    settings: Settings,
    principal: Principal,
    course: str,
    assignment: str,
    request: RegradeCreate,
) -> RegradeView:
    access = resolve_access(session, principal, course, assignment)
    if not access.role.is_staff:
        raise Forbidden("Only TAs and instructors start regrades.")
    snapshot = access.snapshot  # the newest version: what the submissions are graded against
    if request.question is not None and snapshot.question(request.question) is None:
        raise UnprocessableAnswer(
            f"No question {request.question!r} in version {snapshot.version} of {assignment!r}.",
            details={"questions": [question.key for question in snapshot.questions]},
        )
    students = sorted(set(request.students)) if request.students is not None else None
    if students is not None:
        unknown = sorted(set(students) - repository.enrolled_students(session, snapshot.course_id, students))
        if unknown:
            raise UnprocessableAnswer(
                "Some usernames are not students of this course.",
                details={"unknown_students": unknown[:MAX_NAMED_UNKNOWN]},
            )
    repository.lock_assignment(session, snapshot.assignment_id)
    submission_ids = repository.submissions_to_regrade(
        session, snapshot.assignment_id, students, request.question
    )
    now = utcnow()
    regrade = Regrade(
        id=uuid.uuid4(),
        course_id=snapshot.course_id,
        assignment_id=snapshot.assignment_id,
        assignment_version_id=snapshot.id,
        question_key=request.question,
        students=students,
        keep_manual=request.keep_manual,
        requested_by_user_id=principal.user_id,
        total_jobs=len(submission_ids),
        created_at=now,
        # Nothing to grade: done as it starts.
        finished_at=None if submission_ids else now,
    )
    repository.add_regrade(session, regrade)
    if not request.keep_manual:
        _clear_manual_grades(session, regrade, submission_ids)
    grading.enqueue_regrade(session, settings, regrade.id, snapshot, request.question, submission_ids)
    return _view(regrade, course, assignment, snapshot.version, principal.username, None)


def _clear_manual_grades(session: Session, regrade: Regrade, submission_ids: list[uuid.UUID]) -> None:
    """keep_manual=false: the people's grades of the regraded questions go, each one audited; the
    totals fall back to the automatic scores until the new ones land."""
    cleared = repository.take_manual_grades(session, submission_ids, regrade.question_key)
    repository.append_audit(
        session,
        [
            {
                "course_id": regrade.course_id,
                "submission_id": grade.submission_id,
                "question_key": grade.question_key,
                "actor_user_id": regrade.requested_by_user_id,
                "action": "cleared_by_regrade",
                "old_score": grade.score,
                "new_score": None,
                "reason": "A regrade was started with keep_manual=false.",
                "details": {"regrade_id": str(regrade.id), "kind": grade.kind.value},
                "created_at": regrade.created_at,
            }
            for grade in cleared
        ],
    )
    grading.refresh_scores(session, sorted({grade.submission_id for grade in cleared}))


def get_regrade(session: Session, principal: Principal, regrade_id: uuid.UUID) -> RegradeView:
    """Progress; once every job ended, the report of what changed. Outside the course it does
    not exist (404); students of the course may not see it (403)."""
    found = repository.find(session, regrade_id)
    role = role_in(session, found[0].course_id, principal.user_id) if found is not None else None
    if found is None or role is None:
        raise NotFound("No such regrade.")
    if not role.is_staff:
        raise Forbidden("Only TAs and instructors see regrades.")
    regrade, course, assignment, version, requester = found
    view = _view(regrade, course, assignment, version, requester, repository.progress(session, [regrade.id]))
    if view.status == "done":
        view.changes = [
            RegradeChange(
                student=row[0],
                submission_id=row[1],
                question=row[2],
                old_score=row[3],
                new_score=row[4],
                old_verdict=row[5],
                new_verdict=row[6],
                manual_score=row[7],
            )
            for row in repository.changes(session, regrade.id)
        ]
    return view


def list_regrades(
    session: Session, principal: Principal, course: str, assignment: str, limit: int, offset: int
) -> RegradeList:
    access = resolve_access(session, principal, course, assignment)
    if not access.role.is_staff:
        raise Forbidden("Only TAs and instructors see regrades.")
    rows = repository.list_for_assignment(session, access.snapshot.assignment_id, limit, offset)
    progress = repository.progress(session, [row[0].id for row in rows])
    return RegradeList(
        course=course,
        assignment=assignment,
        limit=limit,
        offset=offset,
        items=[_view(*row, progress=progress) for row in rows],
    )


def _view(
    regrade: Regrade,
    course: str,
    assignment: str,
    version: int,
    requester: str,
    progress: dict[uuid.UUID, repository.Progress] | None,
) -> RegradeView:
    done = progress[regrade.id] if progress is not None else repository.Progress(0, 0, None)
    finished = done.ended >= regrade.total_jobs
    return RegradeView(
        id=regrade.id,
        course=course,
        assignment=assignment,
        assignment_version=version,
        question=regrade.question_key,
        students=regrade.students,
        keep_manual=regrade.keep_manual,
        requested_by=requester,
        status="done" if finished else "running",
        progress=RegradeProgress(done=done.ended, total=regrade.total_jobs, errors=done.errors),
        created_at=regrade.created_at,
        # A job the sweeper gave up on ends the regrade without the runner noting it.
        finished_at=(regrade.finished_at or done.last_finished_at) if finished else None,
        changes=None,
        url=f"/api/v1/regrades/{regrade.id}",
    )
