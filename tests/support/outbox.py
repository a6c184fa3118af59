"""Outbox test helpers and fixtures: a sender wired to the real channels and the fake WeCom.

Conftests import the fixtures they need (``from tests.support.outbox import ...``); the
helpers put rows in and read them back through the test's database.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from bot.channels import AppMessageChannel, WelcomeChannel
from bot.wecom import WecomClient
from sop.delivery import RateLimits, Sender, SenderSettings, enqueue, messages
from sop.delivery.channel import Channel
from sop.delivery.messages import STAFF_APP, WELCOME
from store.models import Customer, Interaction, OutboxRow
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom

AGENT_ID = 1000002
SenderFactory = Callable[..., Sender]


@pytest.fixture(autouse=True)
def seed_people(fake_wecom: FakeWecom) -> None:
    fake_wecom.add_staff("zhangsan", "张三")
    fake_wecom.add_staff("lisi", "李四")
    fake_wecom.add_customer("wmAlice", "Alice", follow=["zhangsan"])


@pytest.fixture
def channels(wecom_client: WecomClient, clock: ManualClock) -> list[Channel]:
    return [AppMessageChannel(wecom_client, AGENT_ID), WelcomeChannel(wecom_client, clock)]


@pytest.fixture
def make_sender(db: Database, channels: list[Channel], clock: ManualClock) -> SenderFactory:
    """``make_sender(**SenderSettings fields)``: documented limits, seeded jitter."""

    def make(**settings: Any) -> Sender:
        settings.setdefault("limits", RateLimits())
        return Sender(
            db.sessions, channels, clock, SenderSettings(**settings), rng=random.Random(7)
        )

    return make


async def add_customer(db: Database, external_userid: str, now: datetime) -> int:
    async with db.sessions.begin() as session:
        customer = Customer(external_userid=external_userid, name=external_userid, created_at=now)
        session.add(customer)
        await session.flush()
        return customer.id


async def put(
    db: Database,
    clock: ManualClock,
    key: str,
    payload: dict[str, Any],
    *,
    channel: str = STAFF_APP,
    recipient: str = "zhangsan",
    **extra: Any,
) -> int:
    """Enqueue one row due now (unless ``due_at`` is given); its id."""
    extra.setdefault("due_at", clock.now())
    async with db.sessions.begin() as session:
        new = await enqueue(
            session, key=key, channel=channel, recipient=recipient, payload=payload, **extra
        )
        assert new, f"outbox key {key!r} was already taken"
        query = select(OutboxRow.id).where(OutboxRow.idempotency_key == key)
        return (await session.scalars(query)).one()


async def put_welcome(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, customer: str = "wmAlice"
) -> int:
    """A welcome message for ``customer`` with a fresh WelcomeCode (zhangsan's), due now."""
    code = fake_wecom.add_welcome_code(customer, "zhangsan")
    return await put(
        db,
        clock,
        f"welcome:{customer}",
        messages.welcome(code, "你好"),
        channel=WELCOME,
        recipient=customer,
        expires_at=messages.welcome_expires_at(clock.now()),
    )


async def row_of(db: Database, row_id: int) -> OutboxRow:
    async with db.sessions() as session:
        row = await session.get(OutboxRow, row_id)
        assert row is not None, f"no outbox row {row_id}"
        return row


async def timeline_of(db: Database, customer_id: int) -> list[Interaction]:
    async with db.sessions() as session:
        query = (
            select(Interaction)
            .where(Interaction.customer_id == customer_id)
            .order_by(Interaction.id)
        )
        return list((await session.scalars(query)).all())


async def until(condition: Callable[[], bool], *, what: str, seconds: float = 5.0) -> None:
    """Poll ``condition`` (tiny steps) until it holds; fail naming ``what`` after ``seconds``."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")
