"""outbox attempt marks, settling uncertain rows, urgent claims

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00

``outbox.attempted_at`` is written just before a claimed row's request may leave the sender:
after a crash only attempted rows can be uncertain, the others go back to pending.
``outbox.settle_at`` is when the sender next asks the platform what became of an uncertain
row. ``ix_outbox_pending_expires_at`` (partial: pending rows with a window) lets the sender
claim rows whose window closes soon (welcome messages) ahead of a backlog.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = store.models.base.UTCDateTime(timezone=True)
    op.add_column("outbox", sa.Column("attempted_at", when, nullable=True))
    op.add_column("outbox", sa.Column("settle_at", when, nullable=True))
    where = sa.text("state = 'pending' AND expires_at IS NOT NULL")
    op.create_index(
        "ix_outbox_pending_expires_at",
        "outbox",
        ["expires_at"],
        sqlite_where=where,
        postgresql_where=where,
    )
    # Rows a sender holds while this runs were claimed the old way (attempt counted at the
    # claim): treat them as attempted, so a crash cannot send a customer message twice.
    op.execute("UPDATE outbox SET attempted_at = updated_at WHERE state = 'sending'")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_pending_expires_at")
        batch.drop_column("settle_at")
        batch.drop_column("attempted_at")
