"""assignments per course: a slug is unique within its course, not globally

Revision ID: 0005_courses
Revises: 0004_enums
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_courses"
down_revision: str | None = "0004_enums"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep their course: every (course_id, slug) is unique already, as every slug is.
    # Batch mode: SQLite cannot drop a constraint in place, so it copies the table.
    with op.batch_alter_table("assignments") as batch:
        batch.drop_constraint("uq_assignments_slug", type_="unique")
        batch.create_unique_constraint("uq_assignments_course_id", ["course_id", "slug"])


def downgrade() -> None:
    # Fails (unique violation) once one slug is in two courses: the old schema cannot hold that.
    with op.batch_alter_table("assignments") as batch:
        batch.drop_constraint("uq_assignments_course_id", type_="unique")
        batch.create_unique_constraint("uq_assignments_slug", ["slug"])
