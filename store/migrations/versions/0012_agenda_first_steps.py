"""agenda: a partial index of pending first steps, for the engine's fresh-first claim

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 00:10:00

The engine claims first steps that fell due in the last 20 seconds (a welcome message's code
lives that long) before older rows. Read through ``ix_agenda_state_due_at`` that claim would
walk every row due in those 20 seconds, thousands while a backlog drains; this index holds
only pending first steps, so the claim reads just the rows it takes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = sa.text("state = 'pending' AND seq = 1 AND kind = 'step'")


def upgrade() -> None:
    op.create_index(
        "ix_agenda_first_steps",
        "agenda",
        ["due_at"],
        unique=False,
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_agenda_first_steps", table_name="agenda")
