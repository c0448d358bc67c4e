"""Queues and verdicts are enum columns: read back as `Queue` and `graders.Verdict` members, and the
database itself refuses any other string (a CHECK constraint, on SQLite and on Postgres)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, update
from sqlalchemy import column as column_
from sqlalchemy import table as table_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from graders import Verdict
from service.models import (
    Assignment,
    AssignmentVersion,
    Course,
    GradingJob,
    JobStatus,
    Question,
    QuestionResult,
    Queue,
    Submission,
    User,
)


@dataclass(frozen=True)
class GradedRows:
    question_id: int
    job_id: int
    result_id: int


def add_graded_rows(
    session: Session, queue: Queue = Queue.GPU, verdict: Verdict = Verdict.PENDING_MANUAL
) -> GradedRows:
    """One question of `queue`, a submission to it, its job on `queue` and a result with `verdict`."""
    tag = uuid.uuid4().hex[:8]
    course = Course(slug=f"enum-{tag}", title="Enums")
    user = User(username=f"enum-{tag}", display_name="Enum student")
    session.add_all([course, user])
    session.flush()
    assignment = Assignment(course_id=course.id, slug=f"enum-{tag}")
    session.add(assignment)
    session.flush()
    version = AssignmentVersion(assignment_id=assignment.id, version=1, title="Enums", content_hash="0" * 64)
    session.add(version)
    session.flush()
    question = Question(
        assignment_version_id=version.id,
        key="q1",
        position=0,
        kind="manual",
        points=2.0,
        config={},
        resource_class=queue,
    )
    submission = Submission(
        assignment_version_id=version.id,
        user_id=user.id,
        answers={"q1": "x"},
        request_hash="0" * 64,
        max_score=2.0,
    )
    session.add_all([question, submission])
    session.flush()
    job = GradingJob(submission=submission, status=JobStatus.DONE, queue=queue, max_attempts=3)
    result = QuestionResult(
        submission_id=submission.id,
        question_id=question.id,
        question_key="q1",
        verdict=verdict,
        score=0.0,
        max_score=2.0,
        details={},
        grader_kind="manual",
        grader_version="1",
        reference_version="0" * 16,
        job_attempt=1,
    )
    session.add_all([job, result])
    session.flush()
    return GradedRows(question.id, job.id, result.id)


def test_queues_and_verdicts_read_back_as_enum_members(session: Session) -> None:
    rows = add_graded_rows(session, Queue.GPU, Verdict.PENDING_MANUAL)
    session.expire_all()

    question = session.get(Question, rows.question_id)
    job = session.get(GradingJob, rows.job_id)
    result = session.get(QuestionResult, rows.result_id)

    assert question is not None
    assert job is not None
    assert result is not None
    assert question.resource_class is Queue.GPU
    assert job.queue is Queue.GPU
    assert result.verdict is Verdict.PENDING_MANUAL


@pytest.mark.parametrize(
    ("table", "column", "row"),
    [
        ("questions", "resource_class", "question_id"),
        ("grading_jobs", "queue", "job_id"),
        ("question_results", "verdict", "result_id"),
    ],
)
def test_the_database_refuses_other_strings(
    session: Session, connection: Connection, table: str, column: str, row: str
) -> None:
    rows = add_graded_rows(session)
    session.commit()  # the test's savepoint; the whole test still rolls back

    rows_of = table_(table, column_("id"), column_(column))

    def store(value: str) -> None:
        # A lightweight table: the string goes to the database as it is, past the ORM's enum type.
        connection.execute(update(rows_of).where(rows_of.c.id == getattr(rows, row)).values({column: value}))

    for stored in ("tpu", "CPU", "maybe", ""):
        savepoint = connection.begin_nested()
        with pytest.raises(IntegrityError):
            store(stored)
        savepoint.rollback()

    for member in Verdict if column == "verdict" else Queue:  # every member's value is accepted
        store(member.value)
