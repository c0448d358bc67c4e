"""queue and verdict enums: questions.resource_class, grading_jobs.queue and question_results.verdict
keep their strings and get a CHECK constraint, as grading_jobs.status has

Revision ID: 0004_enums
Revises: 0003_input
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

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

    # On SQLite batch mode copies each table; service.migrations runs it with foreign keys off (and
    # checks them before the commit), so the rows that point at a copied table stay as they are.
    for table, column, name, values in CHECKS:
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(op.f(name), sa.column(column).in_(values))


def downgrade() -> None:
    for table, _column, name, _values in CHECKS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(name), type_="check")


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
