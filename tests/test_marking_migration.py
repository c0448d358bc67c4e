"""Migration 0006 moves the grades TAs gave before manual_grades existed (written into the result
row, with question_results.graded_by_user_id) into manual_grades, and back on a downgrade."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from graders import Verdict
from service.config import Settings
from service.db import make_engine
from service.migrations import downgrade_database, upgrade_database
from service.models import Queue
from tests.conftest import create_scratch_database
from tests.test_enum_columns import add_graded_rows


def test_old_manual_grades_move_into_manual_grades_and_back(backend: str, tmp_path: Path) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    engine = make_engine(Settings(database_url=url))
    try:
        upgrade_database(engine, "0005_courses")
        with Session(engine) as session:
            rows = add_graded_rows(session, Queue.CPU, Verdict.PENDING_MANUAL)
            # What the old PUT .../grade did: the TA's score, verdict and feedback into the row.
            session.execute(
                text(
                    "UPDATE question_results SET score = 1.5, verdict = 'partial', feedback = 'Half.',"
                    " graded_by_user_id = (SELECT user_id FROM submissions"
                    " WHERE submissions.id = question_results.submission_id)"
                    " WHERE id = :id"
                ),
                {"id": rows.result_id},
            )
            session.commit()

        upgrade_database(engine)
        with engine.connect() as connection:
            moved = connection.execute(
                text(
                    "SELECT m.kind, m.score, m.feedback, m.version, m.graded_by_user_id = s.user_id"
                    " FROM manual_grades m JOIN submissions s ON s.id = m.submission_id"
                )
            ).all()
        assert [tuple(row) for row in moved] == [("manual", 1.5, "Half.", 1, True)]

        downgrade_database(engine, "0005_courses")
        with engine.connect() as connection:
            restored = connection.execute(
                text("SELECT score, feedback, graded_by_user_id IS NOT NULL FROM question_results")
            ).all()
        assert [tuple(row) for row in restored] == [(1.5, "Half.", True)]
    finally:
        engine.dispose()
        drop()
