"""Customers, staff, and who follows whom."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, Json, UTCDateTime, str_enum


class Customer(Base):
    """A person outside the company: a WeCom external contact and/or an Official Account follower.

    Rows are created from IDs alone (events carry nothing else); ``synced_at`` stays empty
    until the details have been fetched from the platform.
    """

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_userid: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    name: Mapped[str | None] = mapped_column(String(128), default=None)
    type: Mapped[int | None] = mapped_column(default=None)  # 1 WeChat user, 2 WeCom user
    avatar: Mapped[str | None] = mapped_column(Text, default=None)
    gender: Mapped[int | None] = mapped_column(default=None)
    corp_name: Mapped[str | None] = mapped_column(String(128), default=None)
    position: Mapped[str | None] = mapped_column(String(128), default=None)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_interaction_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: Set when the customer said an opt-out word: no marketing until they opt back in.
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Staff(Base):
    """A member of the company's WeCom directory."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(128), default=None)
    position: Mapped[str | None] = mapped_column(String(128), default=None)
    departments: Mapped[list[int]] = mapped_column(Json, default=list)
    main_department: Mapped[int | None] = mapped_column(default=None)
    status: Mapped[int | None] = mapped_column(default=None)  # 1 active, 2 disabled, 4 not joined
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class FollowState(enum.StrEnum):
    ACTIVE = "active"
    HALF = "half"  # added by the customer, not yet accepted by the staff member
    REMOVED = "removed"


class RemovedBy(enum.StrEnum):
    STAFF = "staff"  # del_external_contact: the staff member removed the customer
    CUSTOMER = "customer"  # del_follow_user: the customer removed the staff member


class CustomerStaff(Base):
    """The relationship a staff member has with a customer (WeCom's ``follow_user``)."""

    __tablename__ = "customer_staff"
    __table_args__ = (UniqueConstraint("customer_id", "staff_userid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    staff_userid: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[FollowState] = mapped_column(str_enum(FollowState), default=FollowState.ACTIVE)
    remark: Mapped[str | None] = mapped_column(String(128), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    add_way: Mapped[int | None] = mapped_column(default=None)
    channel_state: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    oper_userid: Mapped[str | None] = mapped_column(String(64), default=None)
    added_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    removed_by: Mapped[RemovedBy | None] = mapped_column(str_enum(RemovedBy), default=None)
    transfer_fail_reason: Mapped[str | None] = mapped_column(String(64), default=None)


class MpFollower(Base):
    """A follower of an Official Account; ``last_message_at`` opens the 48-hour reply window."""

    __tablename__ = "mp_followers"
    __table_args__ = (
        UniqueConstraint("account", "openid"),
        Index("ix_mp_followers_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    openid: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    subscribed: Mapped[bool] = mapped_column(default=True)
    subscribe_scene: Mapped[str | None] = mapped_column(String(64), default=None)
    subscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
