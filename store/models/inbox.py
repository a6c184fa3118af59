"""The inbox: every accepted callback, stored before it is answered."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, UTCDateTime, str_enum

#: How many lanes the inbox is split into. A callback's lane follows from the customer, group or
#: member it is about, so rows of one lane are processed in arrival order by one processor at a
#: time while other lanes go to other processes. Changing it re-homes pending rows: drain first.
LANES = 64


class InboxState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class InboxRow(Base):
    """One accepted callback (or any other source's item), deduplicated by ``dedupe_key``.

    ``source`` names where it came from (``wecom:<app>``, ``aibot:<bot>``, ``mp:<account>``,
    later ``archive:<corp>``) so the processor can pick the parser; ``payload`` is the
    decrypted body exactly as received. ``lane`` (0 to ``LANES - 1``) is derived from the
    payload's subject when the row is written, ``priority`` from its kind.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_state_id", "state", "id"),
        # The processor's claim: pending rows by priority, then arrival.
        Index(
            "ix_inbox_pending_priority_id",
            "priority",
            "id",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(16))  # "xml" or "json"
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[InboxState] = mapped_column(str_enum(InboxState), default=InboxState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    lane: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    #: Taken in ascending order: 0 (a customer's contact events, on which a welcome message
    #: with a 20-second code waits) ahead of a backlog of 1 (everything else).
    priority: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
