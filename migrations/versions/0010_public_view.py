"""public view: what students see of a result while its hidden checks are not released

Revision ID: 0010_public_view
Revises: 0009_lti_scores
Create Date: 2026-12-01 04:04:06.291413
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_public_view"
down_revision: str | None = "0009_lti_scores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: results stored before hidden checks existed hide nothing.
    with op.batch_alter_table("question_results") as batch:
        batch.add_column(
            sa.Column(
                "public_view",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("question_results") as batch:
        batch.drop_column("public_view")
