"""How much uploaded content the database keeps: quotas per student and per course, and the
retention rule that releases superseded uploads.

Uploads (notebooks) are stored in the database. A student's newest graded uploads per question
keep their bytes; older graded ones keep their row (name, size, SHA-256, also in the submission's
answers) and lose the bytes: nothing grades them again, and staff see the newest. Uploads still
queued or running always keep their bytes, the worker needs them. Quotas count the bytes still
stored, so pruning gives room back.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from service.config import Settings
from service.errors import QuotaExceeded
from service.models import JobStatus
from service.submissions import repository
from service.submissions.schemas import UploadedFile

_FINISHED = frozenset({JobStatus.DONE, JobStatus.ERROR})


def prune_superseded_uploads(session: Session, retain_per_question: int, course_id: int, user_id: int) -> int:
    """Drop the bytes of the student's graded uploads beyond the newest `retain_per_question` per
    assignment and question; returns how many were pruned."""
    graded_seen: dict[tuple[int, str], int] = {}
    superseded: list[int] = []
    for file_id, assignment_id, question_key, job_status in repository.stored_uploads_of(
        session, course_id, user_id
    ):
        if job_status not in _FINISHED:
            continue
        key = (assignment_id, question_key)
        graded_seen[key] = graded_seen.get(key, 0) + 1
        if graded_seen[key] > retain_per_question:
            superseded.append(file_id)
    if superseded:
        repository.drop_file_contents(session, superseded)
    return len(superseded)


def make_room_for_uploads(
    session: Session, settings: Settings, course_id: int, user_id: int, files: Sequence[UploadedFile]
) -> None:
    """Prune the student's superseded uploads, then refuse (413 `quota_exceeded`) files that would
    take the student or the course past its quota."""
    if not files:
        return
    repository.lock_student_uploads(session, user_id)
    prune_superseded_uploads(session, settings.upload_retain_per_question, course_id, user_id)
    incoming = sum(len(upload.content) for upload in files)
    quotas = (
        ("student", "Your uploads in this course", settings.upload_quota_student_bytes, user_id),
        ("course", "This course's uploads", settings.upload_quota_course_bytes, None),
    )
    for scope, whose, allowed, only_user in quotas:
        if allowed == 0:
            continue
        used = repository.stored_upload_bytes(session, course_id, only_user)
        if used + incoming > allowed:
            raise QuotaExceeded(
                f"{whose} use {used:,} of {allowed:,} bytes; this upload needs {incoming:,} more. "
                f"A superseded upload is released once a newer submission of that question is "
                f"graded (the newest {settings.upload_retain_per_question} graded are kept).",
                details={
                    "scope": scope,
                    "used_bytes": used,
                    "incoming_bytes": incoming,
                    "allowed_bytes": allowed,
                },
            )
