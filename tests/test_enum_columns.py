"""Queues and verdicts are enum columns: read back as `Queue` and `graders.Verdict` members, and the
database itself refuses any other string (a CHECK constraint, on SQLite and on Postgres)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Uuid, update
from sqlalchemy import column as column_
from sqlalchemy import table as table_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from graders import Verdict
from service.models import GradingJob, JobStatus, Question, QuestionResult, Queue
from service.models.base import JSONDocument, UTCDateTime


@dataclass(frozen=True)
class GradedRows:
    question_id: int
    job_id: int
    result_id: int


def _insert(session: Session, table: str, **values: object) -> int:
    """Insert one row naming only the columns given: the rows below go into the schema of every
    migration since 0001, so they must not name a column a later migration added."""
    target = table_(table, *(column_(name, _type_of(value)) for name, value in values.items()), column_("id"))
    return int(session.execute(target.insert().values(**values).returning(target.c.id)).scalar_one())


def _type_of(value: object) -> TypeEngine[Any] | None:
    if isinstance(value, datetime):
        return UTCDateTime()
    if isinstance(value, uuid.UUID):
        return Uuid()
    if isinstance(value, dict):
        return JSONDocument
    return None


def add_graded_rows(
    session: Session, queue: Queue = Queue.GPU, verdict: Verdict = Verdict.PENDING_MANUAL
) -> GradedRows:
    """One question of `queue`, a submission to it, its job on `queue` and a result with `verdict`."""
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    course_id = _insert(session, "courses", slug=f"enum-{tag}", title="Enums", created_at=now)
    user_id = _insert(session, "users", username=f"enum-{tag}", display_name="Enum student", created_at=now)
    assignment_id = _insert(session, "assignments", course_id=course_id, slug=f"enum-{tag}", created_at=now)
    version_id = _insert(
        session,
        "assignment_versions",
        assignment_id=assignment_id,
        version=1,
        title="Enums",
        content_hash="0" * 64,
        reference_source="",
        created_at=now,
    )
    question_id = _insert(
        session,
        "questions",
        assignment_version_id=version_id,
        key="q1",
        position=0,
        kind="manual",
        points=2.0,
        prompt="",
        config={},
        resource_class=queue.value,
    )
    submission_key = uuid.uuid4()
    submission = {
        "id": submission_key,
        "assignment_version_id": version_id,
        "user_id": user_id,
        "answers": {"q1": "x"},
        "request_hash": "0" * 64,
        "max_score": 2.0,
        "created_at": now,
    }
    submissions = table_(
        "submissions", *(column_(name, _type_of(value)) for name, value in submission.items())
    )
    session.execute(submissions.insert().values(**submission))
    job_id = _insert(
        session,
        "grading_jobs",
        submission_id=submission_key,
        status=JobStatus.DONE.value,
        queue=queue.value,
        attempt=1,
        max_attempts=3,
        created_at=now,
    )
    result_id = _insert(
        session,
        "question_results",
        submission_id=submission_key,
        question_id=question_id,
        question_key="q1",
        verdict=verdict.value,
        score=0.0,
        max_score=2.0,
        feedback="",
        details={},
        grader_kind="manual",
        grader_version="1",
        reference_version="0" * 16,
        job_attempt=1,
        graded_at=now,
    )
    return GradedRows(question_id, job_id, result_id)


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
