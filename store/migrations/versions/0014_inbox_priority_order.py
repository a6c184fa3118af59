"""inbox priority in ascending order, with an index the processor's claim reads in order

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 03:00:00

The claim takes pending rows by priority, then arrival. With "higher first" no index served
that order, so every claim sorted the whole backlog (5 ms at 20,000 pending rows, on the event
loop on SQLite). Priorities now count up (0 urgent, 1 routine, the new default) and a partial
index of pending rows on ``(priority, id)`` hands the claim its rows in order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    # Only pending rows are ever ordered by it again: done rows keep theirs.
    op.execute("UPDATE inbox SET priority = 1 - priority WHERE state = 'pending'")
    with op.batch_alter_table("inbox") as batch:
        batch.alter_column("priority", server_default="1", existing_type=sa.SmallInteger())
    op.create_index(
        "ix_inbox_pending_priority_id",
        "inbox",
        ["priority", "id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_pending_priority_id", table_name="inbox")
    with op.batch_alter_table("inbox") as batch:
        batch.alter_column("priority", server_default="0", existing_type=sa.SmallInteger())
    op.execute("UPDATE inbox SET priority = 1 - priority WHERE state = 'pending'")
