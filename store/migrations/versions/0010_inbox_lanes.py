"""inbox lanes and priority: rows about one subject in order, lanes in parallel, urgent first

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:30:00

``inbox.lane`` is derived from the callback's subject (customer, group or member) when the row
is written; rows already there are in lane 0, which keeps their order. ``inbox.priority``
puts contact events (a welcome code lives 20 seconds) ahead of a backlog.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "inbox", sa.Column("lane", sa.SmallInteger(), nullable=False, server_default="0")
    )
    op.add_column(
        "inbox", sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("priority")
        batch.drop_column("lane")
