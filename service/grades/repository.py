from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from service.models import (
    Assignment,
    AssignmentVersion,
    GradingJob,
    JobStatus,
    QuestionResult,
    Submission,
    User,
)


def latest_graded_per_student(
    session: Session, course_id: int, slug: str
) -> Sequence[Row[uuid.UUID, str, float | None, float, datetime]]:
    """(submission id, username, score, max score, created_at) of each student's newest graded submission."""
    ranked = (
        select(
            Submission.id.label("submission_id"),
            User.username.label("username"),
            Submission.score.label("score"),
            Submission.max_score.label("max_score"),
            Submission.created_at.label("created_at"),
            func.row_number()
            .over(
                partition_by=Submission.user_id, order_by=(Submission.created_at.desc(), Submission.id.desc())
            )
            .label("rank"),
        )
        # The first job (revision 1) is the submission's status; a regrade's jobs are later ones.
        .join(GradingJob, (GradingJob.submission_id == Submission.id) & (GradingJob.revision == 1))
        .join(User, User.id == Submission.user_id)
        .join(AssignmentVersion, AssignmentVersion.id == Submission.assignment_version_id)
        .join(Assignment, Assignment.id == AssignmentVersion.assignment_id)
        .where(
            Assignment.course_id == course_id, Assignment.slug == slug, GradingJob.status == JobStatus.DONE
        )
        .subquery()
    )
    statement = (
        select(
            ranked.c.submission_id, ranked.c.username, ranked.c.score, ranked.c.max_score, ranked.c.created_at
        )
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.username)
    )
    return session.execute(statement).all()


def question_scores(
    session: Session, submission_ids: Sequence[uuid.UUID]
) -> Sequence[Row[uuid.UUID, str, float, str]]:
    statement = select(
        QuestionResult.submission_id,
        QuestionResult.question_key,
        QuestionResult.score,
        QuestionResult.verdict,
    ).where(QuestionResult.submission_id.in_(list(submission_ids)), QuestionResult.is_current)
    return session.execute(statement).all()
