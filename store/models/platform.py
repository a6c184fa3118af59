"""State shared with the platform: access tokens and the queue of details to fetch."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, UTCDateTime


class AccessToken(Base):
    """One cached access token per credential, shared by every process through the database."""

    __tablename__ = "access_tokens"

    credential: Mapped[str] = mapped_column(String(128), primary_key=True)
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RefreshRequest(Base):
    """A platform object whose details must be (re)fetched: a customer, group, staff member, tag.

    Unique per object, so a burst of events about one customer costs one fetch; a failed fetch
    is rescheduled with backoff and never holds up the inbox.
    """

    __tablename__ = "refresh_requests"
    __table_args__ = (
        UniqueConstraint("kind", "key"),
        Index("ix_refresh_requests_due_at", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # customer, group, staff, tag
    key: Mapped[str] = mapped_column(String(128))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Bumped by every request: a fetch that started before a newer request must not drop it.
    version: Mapped[int] = mapped_column(default=1)
    #: Set while a refresher fetches it (a lease); another refresher skips it until then.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
