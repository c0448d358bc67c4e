"""staff: policies, extensions, manual grades, audit, regrades, result revisions

Results gain a revision (a regrade adds one; the old rows stay, not current); grading jobs too
(a regrade's jobs are revisions 2, 3, ... of a submission's grading). grade_audit is append-only:
triggers refuse UPDATE and DELETE on both backends.

Revision ID: 0006_staff
Revises: 0005_courses
Create Date: 2026-12-01 00:32:04.803937
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_staff"
down_revision: str | None = "0005_courses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assignment_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column(
            "policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_by_user_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_assignment_policies_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_user_id"], ["users.id"], name=op.f("fk_assignment_policies_updated_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment_policies")),
        sa.UniqueConstraint("assignment_id", name=op.f("uq_assignment_policies_assignment_id")),
    )
    op.create_table(
        "extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_extensions_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["granted_by_user_id"], ["users.id"], name=op.f("fk_extensions_granted_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_extensions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_extensions")),
        sa.UniqueConstraint("assignment_id", "user_id", name=op.f("uq_extensions_assignment_id")),
    )
    with op.batch_alter_table("extensions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_extensions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "regrades",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("assignment_version_id", sa.Integer(), nullable=False),
        sa.Column("question_key", sa.String(length=64), nullable=True),
        sa.Column(
            "students",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("keep_manual", sa.Boolean(), nullable=False),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=False),
        sa.Column("total_jobs", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_regrades_assignment_id_assignments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["assignment_version_id"],
            ["assignment_versions.id"],
            name=op.f("fk_regrades_assignment_version_id_assignment_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_regrades_course_id_courses"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_user_id"], ["users.id"], name=op.f("fk_regrades_requested_by_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regrades")),
    )
    with op.batch_alter_table("regrades", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_regrades_assignment_id"), ["assignment_id"], unique=False)

    op.create_table(
        "grade_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("question_key", sa.String(length=64), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("old_score", sa.Float(), nullable=True),
        sa.Column("new_score", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name=op.f("fk_grade_audit_actor_user_id_users")
        ),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], name=op.f("fk_grade_audit_course_id_courses")),
        sa.ForeignKeyConstraint(
            ["submission_id"], ["submissions.id"], name=op.f("fk_grade_audit_submission_id_submissions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grade_audit")),
    )
    with op.batch_alter_table("grade_audit", schema=None) as batch_op:
        batch_op.create_index("ix_grade_audit_course_time", ["course_id", "id"], unique=False)
        batch_op.create_index("ix_grade_audit_submission", ["submission_id", "id"], unique=False)
    _make_audit_append_only()

    op.create_table(
        "manual_grades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("question_key", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "manual",
                "override",
                name="manual_grade_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("feedback", sa.Text(), nullable=False),
        sa.Column(
            "rubric",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("graded_by_user_id", sa.Integer(), nullable=False),
        sa.Column("graded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["graded_by_user_id"], ["users.id"], name=op.f("fk_manual_grades_graded_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_manual_grades_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_grades")),
        sa.UniqueConstraint("submission_id", "question_key", name=op.f("uq_manual_grades_submission_id")),
    )
    _move_old_manual_grades()
    with op.batch_alter_table("assignment_versions", schema=None) as batch_op:
        # Material loaded before policies existed has none: no deadline, no limits.
        batch_op.add_column(
            sa.Column(
                "policy",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default=sa.text("'{}'"),
                nullable=False,
            )
        )

    with op.batch_alter_table("grading_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("regrade_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("assignment_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("question_key", sa.String(length=64), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_grading_jobs_submission_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_grading_jobs_submission_id"), ["submission_id", "revision"]
        )
        batch_op.create_index(batch_op.f("ix_grading_jobs_regrade_id"), ["regrade_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_grading_jobs_regrade_id_regrades"),
            "regrades",
            ["regrade_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_grading_jobs_assignment_version_id_assignment_versions"),
            "assignment_versions",
            ["assignment_version_id"],
            ["id"],
        )

    with op.batch_alter_table("question_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("is_current", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.drop_constraint(batch_op.f("uq_question_results_submission_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_question_results_submission_id"), ["submission_id", "question_key", "revision"]
        )
        batch_op.create_index("ix_question_results_current", ["submission_id", "is_current"], unique=False)
        batch_op.drop_constraint(
            batch_op.f("fk_question_results_graded_by_user_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("graded_by_user_id")

    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late_seconds", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("late_penalty", sa.Float(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("late_penalty")
        batch_op.drop_column("late_seconds")

    with op.batch_alter_table("question_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("graded_by_user_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_question_results_graded_by_user_id_users"), "users", ["graded_by_user_id"], ["id"]
        )
        batch_op.drop_index("ix_question_results_current")
        batch_op.drop_constraint(batch_op.f("uq_question_results_submission_id"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_question_results_submission_id"), ["submission_id", "question_key"]
        )
        batch_op.drop_column("is_current")
        batch_op.drop_column("revision")

    with op.batch_alter_table("grading_jobs", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_grading_jobs_assignment_version_id_assignment_versions"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_grading_jobs_regrade_id_regrades"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_grading_jobs_regrade_id"))
        batch_op.drop_constraint(batch_op.f("uq_grading_jobs_submission_id"), type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_grading_jobs_submission_id"), ["submission_id"])
        batch_op.drop_column("question_key")
        batch_op.drop_column("assignment_version_id")
        batch_op.drop_column("regrade_id")
        batch_op.drop_column("revision")

    with op.batch_alter_table("assignment_versions", schema=None) as batch_op:
        batch_op.drop_column("policy")

    _restore_old_manual_grades()
    op.drop_table("manual_grades")
    with op.batch_alter_table("grade_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_grade_audit_submission")
        batch_op.drop_index("ix_grade_audit_course_time")

    _drop_audit_triggers()
    op.drop_table("grade_audit")
    with op.batch_alter_table("regrades", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_regrades_assignment_id"))

    op.drop_table("regrades")
    with op.batch_alter_table("extensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_extensions_user_id"))

    op.drop_table("extensions")
    op.drop_table("assignment_policies")


def _move_old_manual_grades() -> None:
    """Grades TAs gave before manual_grades existed were written into the result row itself
    (score, verdict, feedback, graded_by_user_id): each becomes a manual_grades row (`manual` on a
    manual question, else an `override`, its reason unknown), before the column goes. The result
    row keeps the TA's score: the automatic one was overwritten then and is gone."""
    op.execute(
        "INSERT INTO manual_grades (submission_id, question_key, kind, score, feedback, rubric, reason,"
        " version, graded_by_user_id, graded_at)"
        " SELECT submission_id, question_key,"
        " CASE WHEN grader_kind = 'manual' THEN 'manual' ELSE 'override' END,"
        " score, feedback, '[]', CASE WHEN grader_kind = 'manual' THEN '' ELSE '(before the audit log)' END,"
        " 1, graded_by_user_id, graded_at"
        " FROM question_results WHERE graded_by_user_id IS NOT NULL"
    )


def _restore_old_manual_grades() -> None:
    """Downgrade: the grades go back into the current result rows they govern."""
    op.execute(
        "UPDATE question_results SET"
        " score = (SELECT m.score FROM manual_grades m"
        " WHERE m.submission_id = question_results.submission_id AND m.question_key = question_results.question_key),"
        " feedback = (SELECT m.feedback FROM manual_grades m"
        " WHERE m.submission_id = question_results.submission_id AND m.question_key = question_results.question_key),"
        " graded_by_user_id = (SELECT m.graded_by_user_id FROM manual_grades m"
        " WHERE m.submission_id = question_results.submission_id AND m.question_key = question_results.question_key),"
        " graded_at = (SELECT m.graded_at FROM manual_grades m"
        " WHERE m.submission_id = question_results.submission_id AND m.question_key = question_results.question_key)"
        " WHERE EXISTS (SELECT 1 FROM manual_grades m"
        " WHERE m.submission_id = question_results.submission_id AND m.question_key = question_results.question_key)"
    )


_APPEND_ONLY_MESSAGE = "grade_audit is append-only"


def _make_audit_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION grade_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MESSAGE}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER grade_audit_append_only BEFORE UPDATE OR DELETE ON grade_audit "
            "FOR EACH ROW EXECUTE FUNCTION grade_audit_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER grade_audit_no_{event.lower()} BEFORE {event} ON grade_audit "
            f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END"
        )


def _drop_audit_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER grade_audit_append_only ON grade_audit")
        op.execute("DROP FUNCTION grade_audit_append_only()")
        return
    for event in ("update", "delete"):
        op.execute(f"DROP TRIGGER grade_audit_no_{event}")
