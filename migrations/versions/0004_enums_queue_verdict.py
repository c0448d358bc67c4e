"""queue and verdict enums: questions.resource_class, grading_jobs.queue and question_results.verdict
keep their strings and get a CHECK constraint, as grading_jobs.status has

Revision ID: 0004_enums
Revises: 0003_input
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_enums"
down_revision: str | None = "0003_input"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values as of this revision (service.models.Queue, graders.Verdict); a later change of either
# enum is a later revision.
QUEUES = ("cpu", "gpu")
VERDICTS = ("correct", "partial", "incorrect", "invalid", "pending_manual", "error")
# table, column, constraint, allowed values
CHECKS = (
    ("questions", "resource_class", "ck_questions_resource_class", QUEUES),
    ("grading_jobs", "queue", "ck_grading_jobs_queue", QUEUES),
    ("question_results", "verdict", "ck_question_results_verdict", VERDICTS),
)


def upgrade() -> None:
    for table, column, _name, values in CHECKS:
        _refuse_unknown_values(table, column, values)

    def add_checks() -> None:
        for table, column, name, values in CHECKS:
            with op.batch_alter_table(table) as batch:
                batch.create_check_constraint(op.f(name), sa.column(column).in_(values))

    _with_question_results_aside(add_checks)


def downgrade() -> None:
    def drop_checks() -> None:
        for table, _column, name, _values in CHECKS:
            with op.batch_alter_table(table) as batch:
                batch.drop_constraint(op.f(name), type_="check")

    _with_question_results_aside(drop_checks)


def _refuse_unknown_values(table: str, column: str, values: Sequence[str]) -> None:
    """Name the rows a CHECK would refuse, rather than fail on the first with the database's error."""
    rows = sa.table(table, sa.column(column))
    unknown = (
        op.get_bind()
        .execute(sa.select(rows.c[column]).where(rows.c[column].not_in(values)).distinct().limit(5))
        .scalars()
        .all()
    )
    if unknown:
        raise RuntimeError(
            f"{table}.{column} holds values outside {', '.join(values)}: {[str(v)[:32] for v in unknown]!r}; "
            "correct those rows, then upgrade again"
        )


def _with_question_results_aside(change: Callable[[], None]) -> None:
    """SQLite adds or drops a CHECK by copying the table, and dropping the old `questions` while
    question_results rows reference it fails: foreign keys are on, and cannot be turned off inside the
    migration's transaction. So on SQLite the results wait in a temporary table meanwhile. Postgres
    alters the tables in place."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        change()
        return
    results = sa.Table("question_results", sa.MetaData(), autoload_with=bind)
    aside = sa.Table(
        "question_results_aside",
        sa.MetaData(),
        *(sa.Column(column.name, column.type) for column in results.columns),
        prefixes=["TEMPORARY"],
    )
    aside.create(bind)
    # INSERT ... SELECT copies the stored values as they are, nothing passes through Python.
    bind.execute(aside.insert().from_select(list(results.columns.keys()), sa.select(results)))
    bind.execute(results.delete())
    change()
    bind.execute(results.insert().from_select(list(aside.columns.keys()), sa.select(aside)))
    aside.drop(bind)
