"""processes and their heartbeats; outbox rows name the process that claimed them

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 02:00:00

A sender killed while it held claimed rows used to leave them until their 5-minute lease
lapsed, longer than a welcome code lives. ``processes`` holds a heartbeat per running process
and ``outbox.claimed_by`` names the claimer, so the others recover a dead process's rows
within seconds.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = store.models.base.UTCDateTime(timezone=True)
    op.create_table(
        "processes",
        sa.Column("token", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("started_at", when, nullable=False),
        sa.Column("seen_at", when, nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_processes")),
    )
    op.create_index("ix_processes_seen_at", "processes", ["seen_at"], unique=False)
    op.add_column("outbox", sa.Column("claimed_by", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
    op.drop_index("ix_processes_seen_at", table_name="processes")
    op.drop_table("processes")
