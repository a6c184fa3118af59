"""withdrawing accepted mass messages of a cancelled campaign run

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 10:00:00

``mass_recipients.status`` gains the value ``withdrawn``: the column is a VARCHAR(32) without a
CHECK constraint (``native_enum=False``), so only the column below is new.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "mass_jobs",
        sa.Column(
            "withdraw_requested_at",
            store.models.base.UTCDateTime(timezone=True),
            nullable=True,
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("mass_jobs") as batch:
        batch.drop_column("withdraw_requested_at")
