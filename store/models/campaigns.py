"""Broadcast campaigns: each run of a campaign, and what became of each of its recipients.

A run is one fan-out of a campaign's audience (a ``start``, or one cron fire). It keeps the
definition it was started with (and its digest), its state, and the keyset ``cursor`` of the
fan-out, so a crash resumes after the last committed batch. Every recipient considered gets
exactly one :class:`CampaignRecipient` row (unique per run), included or excluded with the
reason; an included one names the outbox row that carries its message by idempotency key.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, Json, UTCDateTime, str_enum


class RunState(enum.StrEnum):
    PLANNED = "planned"  # created, fan-out not begun
    RUNNING = "running"  # fanning out and/or sending
    PAUSED = "paused"  # no new sends: pending rows held, fan-out stopped
    CANCELLED = "cancelled"  # pending rows cancelled; nothing more will go out
    DONE = "done"  # fanned out and every row settled


#: States a run never leaves.
RUN_FINAL = frozenset({RunState.CANCELLED, RunState.DONE})


class CampaignRun(Base):
    __tablename__ = "campaign_runs"
    __table_args__ = (
        UniqueConstraint("campaign", "number"),
        UniqueConstraint("campaign", "fire_time"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign: Mapped[str] = mapped_column(String(64))
    number: Mapped[int]
    #: sha256 of the definition's JSON: which version of the YAML this run sends.
    digest: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(Json)
    channel: Mapped[str] = mapped_column(String(16))
    state: Mapped[RunState] = mapped_column(str_enum(RunState), default=RunState.PLANNED)
    #: The fire this run stands for (the start time for a manual start, the cron minute).
    fire_time: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The last customer (or group) id fanned out; None before the first batch.
    cursor: Mapped[int | None] = mapped_column(BigInteger, default=None)
    batches: Mapped[int] = mapped_column(default=0)
    #: Outbox rows written so far (the throttle's sequence number).
    rows: Mapped[int] = mapped_column(default=0)
    #: The next send slot (throttle and quiet hours applied).
    next_slot_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: {"recipients": n, "included": n, "excluded": {reason: n}, "variants": {name: n}}.
    counts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    collected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignRecipient(Base):
    """One customer (``c<id>``) or group (``g<id>``) of a run."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (UniqueConstraint("run_id", "recipient"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), default=None
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer_groups.id", ondelete="SET NULL"), default=None
    )
    #: What the platform addresses: external userid, openid or chat id.
    address: Mapped[str | None] = mapped_column(String(128), default=None)
    variant: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str | None] = mapped_column(String(64), default=None)
    outbox_key: Mapped[str | None] = mapped_column(String(200), default=None)
    #: Why this recipient gets nothing (opted_out, capped, ...); None: included.
    excluded: Mapped[str | None] = mapped_column(String(32), default=None)
    #: The delivery as last collected: an outbox state, or a mass recipient's status.
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    converted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
