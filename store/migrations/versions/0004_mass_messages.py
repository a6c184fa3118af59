"""mass message jobs and per-recipient results

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, store.models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "mass_jobs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("outbox_id", _ID, nullable=False),
        sa.Column("msgid", sa.String(length=128), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("chat_type", sa.String(length=8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        _time("accepted_at", nullable=False),
        _time("next_poll_at", nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("reminders", sa.Integer(), nullable=False),
        sa.Column("staff_status", sa.Integer(), nullable=True),
        _time("staff_sent_at", nullable=True),
        _time("cancelled_at", nullable=True),
        sa.Column("last_errcode", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _time("finished_at", nullable=True),
        _time("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_mass_jobs_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mass_jobs")),
        sa.UniqueConstraint("msgid", name=op.f("uq_mass_jobs_msgid")),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_mass_jobs_outbox_id")),
    )
    with op.batch_alter_table("mass_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_mass_jobs_due", ["finished_at", "next_poll_at"], unique=False)

    op.create_table(
        "mass_recipients",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("job_id", _ID, nullable=False),
        sa.Column("outbox_id", _ID, nullable=False),
        sa.Column("msgid", sa.String(length=128), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("customer_id", _ID, nullable=True),
        sa.Column("group_id", _ID, nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "not_a_contact",
                "limit_reached",
                "not_confirmed",
                "failed",
                name="massstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        _time("send_time", nullable=True),
        _time("created_at", nullable=False),
        _time("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_mass_recipients_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["customer_groups.id"],
            name=op.f("fk_mass_recipients_group_id_customer_groups"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["mass_jobs.id"],
            name=op.f("fk_mass_recipients_job_id_mass_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_mass_recipients_outbox_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mass_recipients")),
        sa.UniqueConstraint(
            "job_id", "recipient", name=op.f("uq_mass_recipients_job_id_recipient")
        ),
    )
    with op.batch_alter_table("mass_recipients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mass_recipients_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            "ix_mass_recipients_outbox_status", ["outbox_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mass_recipients", schema=None) as batch_op:
        batch_op.drop_index("ix_mass_recipients_outbox_status")
        batch_op.drop_index(batch_op.f("ix_mass_recipients_customer_id"))
    op.drop_table("mass_recipients")
    with op.batch_alter_table("mass_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_mass_jobs_due")
    op.drop_table("mass_jobs")
