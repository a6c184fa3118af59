"""customer transfers (inheritance) and the audit log

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, store.models.base.UTCDateTime(timezone=True), nullable=nullable)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    op.create_table(
        "transfer_jobs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("mode", _enum("transfermode", "resigned", "onjob"), nullable=False),
        sa.Column("handover_userid", sa.String(length=64), nullable=False),
        sa.Column("takeover_userid", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "state",
            _enum("transferjobstate", "running", "done", "cancelled"),
            nullable=False,
        ),
        _time("next_check_at", nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("counts", _JSON, nullable=False),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        _time("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_transfer_jobs_key")),
    )
    with op.batch_alter_table("transfer_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_transfer_jobs_state_next_check_at", ["state", "next_check_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transfer_jobs_handover_userid"), ["handover_userid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_transfer_jobs_takeover_userid"), ["takeover_userid"], unique=False
        )
    op.create_table(
        "transfer_items",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("job_id", _ID, nullable=False),
        sa.Column("kind", _enum("transferitemkind", "customer", "group"), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("customer_id", _ID, nullable=True),
        sa.Column("group_id", _ID, nullable=True),
        sa.Column(
            "state",
            _enum("transferitemstate", "pending", "waiting", "transferred", "failed"),
            nullable=False,
        ),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _time("submitted_at", nullable=True),
        _time("takeover_at", nullable=True),
        _time("finished_at", nullable=True),
        _time("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_transfer_items_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["customer_groups.id"],
            name=op.f("fk_transfer_items_group_id_customer_groups"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["transfer_jobs.id"],
            name=op.f("fk_transfer_items_job_id_transfer_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_items")),
        sa.UniqueConstraint(
            "job_id", "kind", "subject", name=op.f("uq_transfer_items_job_id_kind_subject")
        ),
    )
    with op.batch_alter_table("transfer_items", schema=None) as batch_op:
        batch_op.create_index("ix_transfer_items_job_state", ["job_id", "state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_transfer_items_customer_id"), ["customer_id"], unique=False
        )
    op.create_table(
        "audit_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        _time("at", nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_subject_at", ["subject", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))
        batch_op.drop_index("ix_audit_log_subject_at")
    op.drop_table("audit_log")
    with op.batch_alter_table("transfer_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfer_items_customer_id"))
        batch_op.drop_index("ix_transfer_items_job_state")
    op.drop_table("transfer_items")
    with op.batch_alter_table("transfer_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfer_jobs_takeover_userid"))
        batch_op.drop_index(batch_op.f("ix_transfer_jobs_handover_userid"))
        batch_op.drop_index("ix_transfer_jobs_state_next_check_at")
    op.drop_table("transfer_jobs")
