"""rate-limit spends shared by every sender process

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import store.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_spends",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("period_ms", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("spent", sa.Integer(), nullable=False),
        sa.Column("last_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", store.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "scope", "key", "period_ms", "bucket", name=op.f("pk_rate_spends")
        ),
    )
    with op.batch_alter_table("rate_spends", schema=None) as batch_op:
        batch_op.create_index("ix_rate_spends_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rate_spends", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_spends_expires_at")
    op.drop_table("rate_spends")
