"""The customer timeline: every message and event, informal ones included."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, Json, UTCDateTime, str_enum


class Direction(enum.StrEnum):
    INBOUND = "in"  # the customer said or did it
    OUTBOUND = "out"  # the company said it
    EVENT = "event"  # something happened around the customer


class Interaction(Base):
    """One entry on a timeline: of a customer, of a group, or both.

    ``inbox_id`` + ``seq`` is unique, so reprocessing a callback can never add an entry twice.
    Unknown payloads are kept with ``kind = "raw"`` and the payload in ``data``.
    """

    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("inbox_id", "seq"),
        Index("ix_interactions_customer_time", "customer_id", "occurred_at"),
        Index("ix_interactions_group_time", "group_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), default=None
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_groups.id", ondelete="CASCADE"), default=None
    )
    staff_userid: Mapped[str | None] = mapped_column(String(64), default=None)
    direction: Mapped[Direction] = mapped_column(str_enum(Direction))
    kind: Mapped[str] = mapped_column(String(48))
    summary: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    source: Mapped[str] = mapped_column(String(64))
    inbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbox.id", ondelete="SET NULL"), default=None
    )
    seq: Mapped[int] = mapped_column(default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
