"""Enqueueing: in the caller's transaction, once per idempotency key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from sop.delivery import enqueue, messages
from store.models import OutboxRow, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database


async def _count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxRow)) or 0)


async def test_the_same_key_twice_makes_one_row(db: Database, clock: ManualClock) -> None:
    fields: dict[str, Any] = {
        "key": "enrollment:1:step:2",
        "channel": "wecom_app",
        "recipient": "zhangsan",
        "payload": messages.text("first"),
        "due_at": clock.now(),
    }
    async with db.sessions.begin() as session:
        assert await enqueue(session, **fields) is True
    async with db.sessions.begin() as session:
        assert await enqueue(session, **{**fields, "payload": messages.text("second")}) is False

    async with db.sessions() as session:
        [row] = (await session.scalars(select(OutboxRow))).all()
    assert row.payload == messages.text("first")
    assert (row.state, row.attempts, row.created_at) == (OutboxState.PENDING, 0, clock.now())


async def test_a_rolled_back_transaction_leaves_no_row(db: Database, clock: ManualClock) -> None:
    with pytest.raises(RuntimeError):
        async with db.sessions.begin() as session:
            await enqueue(
                session,
                key="campaign:7:wmAlice",
                channel="wecom_welcome",
                recipient="wmAlice",
                payload={},
                due_at=clock.now(),
            )
            raise RuntimeError("the change that caused it failed")

    assert await _count(db) == 0


async def test_naive_times_and_bad_keys_are_refused(db: Database, clock: ManualClock) -> None:
    async with db.sessions.begin() as session:
        with pytest.raises(ValueError, match="timezone-aware"):
            await enqueue(
                session,
                key="k",
                channel="wecom_app",
                recipient="zhangsan",
                payload={},
                due_at=datetime(2026, 1, 1),  # noqa: DTZ001
            )
        with pytest.raises(ValueError, match="1-200 characters"):
            await enqueue(
                session,
                key="k" * 201,
                channel="wecom_app",
                recipient="zhangsan",
                payload={},
                due_at=clock.now(),
            )
