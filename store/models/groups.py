"""Customer groups (客户群) and their members."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, UTCDateTime


class CustomerGroup(Base):
    __tablename__ = "customer_groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(128), default=None)
    owner_userid: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    notice: Mapped[str | None] = mapped_column(Text, default=None)
    platform_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    member_version: Mapped[str | None] = mapped_column(String(64), default=None)
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class GroupMember(Base):
    """A member of a group; ``left_at`` is set rather than deleting, so history stays."""

    __tablename__ = "group_members"
    __table_args__ = (UniqueConstraint("group_id", "member_userid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("customer_groups.id", ondelete="CASCADE"))
    member_userid: Mapped[str] = mapped_column(String(64), index=True)
    member_type: Mapped[int | None] = mapped_column(default=None)  # 1 staff, 2 external
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True, default=None
    )
    name: Mapped[str | None] = mapped_column(String(128), default=None)
    group_nickname: Mapped[str | None] = mapped_column(String(128), default=None)
    join_scene: Mapped[int | None] = mapped_column(default=None)  # 1 invited, 2 link, 3 QR code
    invitor_userid: Mapped[str | None] = mapped_column(String(64), default=None)
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    quit_scene: Mapped[int | None] = mapped_column(default=None)  # 0 left, 1 removed
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
