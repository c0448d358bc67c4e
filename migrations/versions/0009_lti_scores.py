"""lti scores: AGS line items and score deliveries

Revision ID: 0009_lti_scores
Revises: 0008_lti
Create Date: 2026-12-01 02:15:41.709665
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_lti_scores"
down_revision: str | None = "0008_lti"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "lti_line_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("lineitems_url", sa.String(length=2000), nullable=True),
        sa.Column("lineitem_url", sa.String(length=2000), nullable=True),
        sa.Column("resource_link_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_lti_line_items_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platforms.id"],
            name=op.f("fk_lti_line_items_platform_id_lti_platforms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_line_items")),
        sa.UniqueConstraint("platform_id", "assignment_id", name=op.f("uq_lti_line_items_platform_id")),
    )
    op.create_table(
        "lti_score_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("line_item_id", sa.Integer(), nullable=False),
        sa.Column("lms_user_id", sa.String(length=255), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "delivered",
                "dead",
                name="lti_score_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("score_timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbox_events.id"],
            name=op.f("fk_lti_score_deliveries_event_id_outbox_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["line_item_id"],
            ["lti_line_items.id"],
            name=op.f("fk_lti_score_deliveries_line_item_id_lti_line_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_score_deliveries")),
        sa.UniqueConstraint(
            "event_id", "line_item_id", "lms_user_id", name=op.f("uq_lti_score_deliveries_event_id")
        ),
    )
    with op.batch_alter_table("lti_score_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_lti_score_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_lti_score_deliveries_event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            "ix_lti_score_deliveries_target", ["line_item_id", "lms_user_id", "id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("lti_score_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_lti_score_deliveries_target")
        batch_op.drop_index(batch_op.f("ix_lti_score_deliveries_event_id"))
        batch_op.drop_index("ix_lti_score_deliveries_due")

    op.drop_table("lti_score_deliveries")
    op.drop_table("lti_line_items")
