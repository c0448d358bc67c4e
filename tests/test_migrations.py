"""The migrations build exactly the schema the models describe, on SQLite and on Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Engine, inspect, text
from sqlalchemy.orm import Session

from graders import Verdict
from service.config import Settings
from service.db import make_engine
from service.migrations import downgrade_database, upgrade_database
from service.models import Base, QuestionResult, Queue
from tests.conftest import create_scratch_database
from tests.test_enum_columns import GradedRows, add_graded_rows


def test_migrations_and_models_agree(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_and_downgrade_round_trip(backend: str, tmp_path: Path) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    engine = make_engine(Settings(database_url=url))
    try:
        upgrade_database(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        downgrade_database(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_database(engine)
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
        drop()


def _check_constraint_names(engine: Engine) -> set[str]:
    inspector = inspect(engine)
    return {
        str(check["name"])
        for table in inspector.get_table_names()
        for check in inspector.get_check_constraints(table)
    }


def test_migrations_add_the_check_constraints_the_models_declare(migrated_engine: Engine) -> None:
    # Autogenerate compares no CHECK constraints: compare their names here.
    declared = {
        str(constraint.name)
        for table in Base.metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    assert {"ck_questions_resource_class", "ck_grading_jobs_queue", "ck_question_results_verdict"} <= declared
    assert _check_constraint_names(migrated_engine) == declared


def _downgrade(engine: Engine, revision: str) -> None:
    downgrade_database(engine, revision)


def _stored_strings(engine: Engine, rows: GradedRows) -> tuple[str, str, str]:
    with engine.connect() as connection:
        return (
            connection.execute(
                text("SELECT resource_class FROM questions WHERE id = :id"), {"id": rows.question_id}
            ).scalar_one(),
            connection.execute(
                text("SELECT queue FROM grading_jobs WHERE id = :id"), {"id": rows.job_id}
            ).scalar_one(),
            connection.execute(
                text("SELECT verdict FROM question_results WHERE id = :id"), {"id": rows.result_id}
            ).scalar_one(),
        )


def test_enum_migration_keeps_existing_rows_both_ways(backend: str, tmp_path: Path) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    engine = make_engine(Settings(database_url=url))
    try:
        upgrade_database(engine, "0003_input")
        with Session(engine) as session:
            rows = add_graded_rows(session, Queue.GPU, Verdict.PENDING_MANUAL)
            session.commit()

        upgrade_database(engine)
        assert _stored_strings(engine, rows) == ("gpu", "gpu", "pending_manual")
        with Session(engine) as session:
            result = session.get(QuestionResult, rows.result_id)
            assert result is not None
            assert result.verdict is Verdict.PENDING_MANUAL
        assert {"ck_questions_resource_class", "ck_question_results_verdict"} <= _check_constraint_names(
            engine
        )

        _downgrade(engine, "0003_input")
        assert _stored_strings(engine, rows) == ("gpu", "gpu", "pending_manual")
        assert _check_constraint_names(engine) == {"ck_enrollments_role", "ck_grading_jobs_job_status"}
    finally:
        engine.dispose()
        drop()


def test_enum_migration_names_rows_it_cannot_move(backend: str, tmp_path: Path) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    engine = make_engine(Settings(database_url=url))
    try:
        upgrade_database(engine, "0003_input")
        with Session(engine) as session:
            rows = add_graded_rows(session)
            session.commit()
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE question_results SET verdict = 'maybe' WHERE id = :id"), {"id": rows.result_id}
            )

        with pytest.raises(RuntimeError, match=r"question_results\.verdict holds values outside .*'maybe'"):
            upgrade_database(engine)
        with engine.connect() as connection:
            assert (
                connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
                == "0003_input"
            )
    finally:
        engine.dispose()
        drop()


def test_public_view_migration_keeps_results_both_ways(backend: str, tmp_path: Path) -> None:
    url, drop = create_scratch_database(backend, tmp_path)
    engine = make_engine(Settings(database_url=url))
    try:
        upgrade_database(engine, "0009_lti_scores")
        with Session(engine) as session:
            rows = add_graded_rows(session, Queue.CPU, Verdict.PARTIAL)
            session.commit()

        upgrade_database(engine, "0010_public_view")
        with Session(engine) as session:
            result = session.get(QuestionResult, rows.result_id)
            assert result is not None
            assert result.public_view is None  # stored before hidden checks: nothing hidden
            result.public_view = {"fraction": 0.25, "max_fraction": 0.5, "feedback": "scale: 1/1"}
            session.commit()
        with Session(engine) as session:
            stored = session.get(QuestionResult, rows.result_id)
            assert stored is not None
            assert stored.public_view == {"fraction": 0.25, "max_fraction": 0.5, "feedback": "scale: 1/1"}

        _downgrade(engine, "0009_lti_scores")
        columns = {column["name"] for column in inspect(engine).get_columns("question_results")}
        assert "public_view" not in columns
        assert _stored_strings(engine, rows)[2] == "partial"
    finally:
        engine.dispose()
        drop()
