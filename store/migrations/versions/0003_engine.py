"""engine: enrollments, agenda, step runs, cron fires, playbook versions, tasks, opt-outs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import store.models.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cron_fires",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job", sa.String(length=128), nullable=False),
        sa.Column("fire_time", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("taken_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=True),
        sa.Column("finished_at", store.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cron_fires")),
        sa.UniqueConstraint("job", "fire_time", name=op.f("uq_cron_fires_job_fire_time")),
    )
    op.create_table(
        "playbook_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playbook_versions")),
        sa.UniqueConstraint("name", "digest", name=op.f("uq_playbook_versions_name_digest")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_playbook_versions_name_version")),
    )
    op.create_table(
        "enrollments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("playbook", sa.String(length=64), nullable=False),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("staff_userid", sa.String(length=64), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "active",
                "completed",
                "exited",
                "cancelled",
                "failed",
                name="enrollmentstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "waiting",
            sa.Enum("none", "reply", "task", name="waiting", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("enrolled_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", store.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("goal_met_at", store.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_enrollments_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["customer_groups.id"],
            name=op.f("fk_enrollments_group_id_customer_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["playbook_versions.id"],
            name=op.f("fk_enrollments_version_id_playbook_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrollments")),
        sa.UniqueConstraint("key", name=op.f("uq_enrollments_key")),
    )
    op.create_index(
        "ix_enrollments_customer_state", "enrollments", ["customer_id", "state"], unique=False
    )
    op.create_index(
        "ix_enrollments_playbook_state", "enrollments", ["playbook", "state"], unique=False
    )
    op.create_table(
        "marketing_touches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_marketing_touches_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_marketing_touches")),
    )
    op.create_index(
        "ix_marketing_touches_customer_at",
        "marketing_touches",
        ["customer_id", "at"],
        unique=False,
    )
    op.create_table(
        "agenda",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "enrollment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "step",
                "reply_timeout",
                "task_timeout",
                name="agendakind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("due_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "running",
                "done",
                "skipped",
                "cancelled",
                name="agendastate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("lease_until", store.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_agenda_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agenda")),
        sa.UniqueConstraint("enrollment_id", "seq", name=op.f("uq_agenda_enrollment_id_seq")),
    )
    op.create_index("ix_agenda_state_due_at", "agenda", ["state", "due_at"], unique=False)
    op.create_table(
        "step_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "enrollment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("due_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ran_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_step_runs_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_runs")),
    )
    op.create_index("ix_step_runs_enrollment_id", "step_runs", ["enrollment_id"], unique=False)
    op.create_table(
        "tasks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("staff_userid", sa.String(length=64), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "enrollment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("step_index", sa.Integer(), nullable=True),
        sa.Column("origin", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("due_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("escalate_at", store.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "open",
                "done",
                "snoozed",
                "skipped",
                "expired",
                "reassigned",
                name="taskstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "history",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", store.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_tasks_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_tasks_enrollment_id_enrollments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["customer_groups.id"],
            name=op.f("fk_tasks_group_id_customer_groups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("key", name=op.f("uq_tasks_key")),
    )
    op.create_index("ix_tasks_staff_state", "tasks", ["staff_userid", "state"], unique=False)
    op.create_index("ix_tasks_state_due_at", "tasks", ["state", "due_at"], unique=False)
    op.add_column(
        "customers",
        sa.Column("opted_out_at", store.models.base.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("customers", "opted_out_at")
    op.drop_index("ix_tasks_state_due_at", table_name="tasks")
    op.drop_index("ix_tasks_staff_state", table_name="tasks")
    op.drop_table("tasks")
    op.drop_index("ix_step_runs_enrollment_id", table_name="step_runs")
    op.drop_table("step_runs")
    op.drop_index("ix_agenda_state_due_at", table_name="agenda")
    op.drop_table("agenda")
    op.drop_index("ix_marketing_touches_customer_at", table_name="marketing_touches")
    op.drop_table("marketing_touches")
    op.drop_index("ix_enrollments_playbook_state", table_name="enrollments")
    op.drop_index("ix_enrollments_customer_state", table_name="enrollments")
    op.drop_table("enrollments")
    op.drop_table("playbook_versions")
    op.drop_table("cron_fires")
