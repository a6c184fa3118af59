"""task reminders, escalations and digests

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMES = ("snoozed_until", "reminded_at", "escalated_at")


def upgrade() -> None:
    for name in _TIMES:
        op.add_column(
            "tasks",
            sa.Column(name, store.models.base.UTCDateTime(timezone=True), nullable=True),
        )
    op.add_column("tasks", sa.Column("escalated_to", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("escalated_to")
        for name in reversed(_TIMES):
            batch.drop_column(name)
