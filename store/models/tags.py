"""The tag library and which customer carries which tag, and why."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, UTCDateTime, str_enum


class Tag(Base):
    """A corp tag (企业标签) mirrored from WeCom, or a local tag that has no platform id yet."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("group_name", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    group_platform_id: Mapped[str | None] = mapped_column(String(64), default=None)
    group_name: Mapped[str] = mapped_column(String(128), default="")
    name: Mapped[str] = mapped_column(String(128))
    type: Mapped[int] = mapped_column(default=1)  # 1 corp, 2 personal, 3 rule-based
    order: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class TagSource(enum.StrEnum):
    WECOM = "wecom"  # seen on the customer's follow_user tags in WeCom
    PLAYBOOK = "playbook"
    CAMPAIGN = "campaign"
    MANUAL = "manual"


class CustomerTag(Base):
    """A tag on a customer, by the staff member whose relationship carries it ("" for none)."""

    __tablename__ = "customer_tags"
    __table_args__ = (UniqueConstraint("customer_id", "tag_id", "staff_userid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), index=True)
    staff_userid: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[TagSource] = mapped_column(str_enum(TagSource))
    source_ref: Mapped[str | None] = mapped_column(String(128), default=None)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
