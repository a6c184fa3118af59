"""Database hiccups in the sender's claims and writes are retried, never a failed or
uncertain row: its PostgreSQL connections are terminated mid-drain, twice."""

from __future__ import annotations

import asyncio
import functools

import pytest
from sqlalchemy import select, text

from sop.delivery import RateLimits
from store.models import OutboxRow, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, put_welcome, until

WELCOME_API = "externalcontact/send_welcome_msg"
CUSTOMERS = 40
TERMINATE_OTHERS = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _called(fake: FakeWecom, calls: int) -> bool:
    return len(fake.calls_to(WELCOME_API)) >= calls


async def _terminate_the_others(db: Database) -> int:
    async with db.engine.connect() as connection:
        return int((await connection.execute(TERMINATE_OTHERS)).scalar_one())


async def test_terminated_connections_are_replaced_and_every_row_sent_once(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    if db.backend != "postgres":
        pytest.skip("terminating a connection is PostgreSQL's (SQLite busy: store.transient)")
    for i in range(CUSTOMERS):
        fake_wecom.add_customer(f"wmCustomer{i}", f"客户{i}", follow=["zhangsan"])
        await put_welcome(db, clock, fake_wecom, f"wmCustomer{i}")
    fake_wecom.delay(WELCOME_API, 0.05)
    sender = make_sender(batch_size=10, concurrency=4, limits=RateLimits.unlimited())

    draining = asyncio.ensure_future(sender.drain())
    for calls in (8, 24):
        await until(functools.partial(_called, fake_wecom, calls), what=f"{calls} sends")
        assert await _terminate_the_others(db) >= 1  # the sender's own connections among them
    report = await asyncio.wait_for(draining, timeout=60)

    async with db.sessions() as session:
        rows = (await session.scalars(select(OutboxRow))).all()
    assert [(r.state, r.attempts) for r in rows] == [(OutboxState.SENT, 1)] * CUSTOMERS
    assert report.recovered_uncertain == []
    delivered = [d.to for d in fake_wecom.outbound.deliveries]
    assert sorted(delivered) == sorted(f"wmCustomer{i}" for i in range(CUSTOMERS))
