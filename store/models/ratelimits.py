"""Rate-limit spends shared by every sender process: the database is the coordinator.

A sender reserves sends against a budget (``scope`` + ``key``: the corp's budget of an API,
one staff member's budget of app messages) inside the transaction that claims the rows, so
two processes can never both spend the last send of a window. Each row is one bucket of one
window length (``period_ms``): how many sends it holds (``spent``) and when the latest of
them was made (``last_at``); a bucket counts until ``last_at + period`` (``expires_at``),
after which it is useless and pruned.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, UTCDateTime


class RateSpend(Base):
    """Sends spent from one budget in one bucket of one window length."""

    __tablename__ = "rate_spends"
    __table_args__ = (Index("ix_rate_spends_expires_at", "expires_at"),)

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    period_ms: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    bucket: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    spent: Mapped[int] = mapped_column(default=0)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
