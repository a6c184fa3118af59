"""broadcast campaigns: runs and recipients

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import store.models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, store.models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "campaign_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "planned",
                "running",
                "paused",
                "cancelled",
                "done",
                name="runstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        _time("fire_time", nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=True),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        _time("next_slot_at", nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        _time("created_at", nullable=False),
        _time("fanned_out_at", nullable=True),
        _time("paused_at", nullable=True),
        _time("finished_at", nullable=True),
        _time("collected_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _time("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_runs")),
        sa.UniqueConstraint(
            "campaign", "fire_time", name=op.f("uq_campaign_runs_campaign_fire_time")
        ),
        sa.UniqueConstraint("campaign", "number", name=op.f("uq_campaign_runs_campaign_number")),
    )
    op.create_table(
        "campaign_recipients",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("run_id", _ID, nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("customer_id", _ID, nullable=True),
        sa.Column("group_id", _ID, nullable=True),
        sa.Column("address", sa.String(length=128), nullable=True),
        sa.Column("variant", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("outbox_key", sa.String(length=200), nullable=True),
        sa.Column("excluded", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        _time("reached_at", nullable=True),
        _time("replied_at", nullable=True),
        _time("converted_at", nullable=True),
        _time("created_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_campaign_recipients_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["customer_groups.id"],
            name=op.f("fk_campaign_recipients_group_id_customer_groups"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["campaign_runs.id"],
            name=op.f("fk_campaign_recipients_run_id_campaign_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_recipients")),
        sa.UniqueConstraint(
            "run_id", "recipient", name=op.f("uq_campaign_recipients_run_id_recipient")
        ),
    )


def downgrade() -> None:
    op.drop_table("campaign_recipients")
    op.drop_table("campaign_runs")
