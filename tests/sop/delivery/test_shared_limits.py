"""Rate limits shared through the database: two senders never exceed a member's limit together."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.channels import AppMessageChannel, WelcomeChannel
from bot.wecom import WecomClient
from sop.delivery import Channel, Rate, RateKey, RateLimits, Sender, SenderSettings, messages
from sop.delivery.shared_limits import BucketWindow, SharedRateLimiter
from store.db import create_engine, session_factory
from store.models import OutboxState, RateSpend
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import AGENT_ID, SenderFactory, put, row_of

MEMBER = RateKey("member:message/send", "zhangsan")
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def second_sender(
    db: Database, fake_wecom: FakeWecom, clock: ManualClock
) -> AsyncIterator[Sender]:
    """A sender as another process has it: its own engine, sessions, HTTP session, client."""
    engine = create_engine(db.url)
    sessions = session_factory(engine)
    try:
        async with aiohttp.ClientSession() as http:
            client = WecomClient(
                base_url=fake_wecom.base_url,
                corp_id=fake_wecom.corp_id,
                secret=fake_wecom.secret,
                credential="wecom:test",
                sessions=sessions,
                clock=clock,
                http=http,
                timeout=5.0,
            )
            channels: list[Channel] = [
                AppMessageChannel(client, AGENT_ID),
                WelcomeChannel(client, clock),
            ]
            settings = SenderSettings(batch_size=7, concurrency=4, limits=RateLimits())
            yield Sender(sessions, channels, clock, settings, rng=random.Random(3))
    finally:
        await engine.dispose()


def most_in_any_window(times: list[datetime], per: timedelta) -> int:
    ordered = sorted(times)
    return max(
        (sum(1 for t in ordered[i:] if t < start + per) for i, start in enumerate(ordered)),
        default=0,
    )


async def test_two_senders_together_never_exceed_a_members_limit(
    db: Database,
    clock: ManualClock,
    fake_wecom: FakeWecom,
    make_sender: SenderFactory,
    second_sender: Sender,
) -> None:
    ids = [await put(db, clock, f"nudge:{i}", messages.text(f"#{i}")) for i in range(100)]
    first = make_sender(batch_size=7, concurrency=4)

    for _ in range(40):
        await asyncio.gather(first.drain(), second_sender.drain())
        clock.advance(13)

    delivered = fake_wecom.outbound.delivered_to("zhangsan")
    assert fake_wecom.outbound.dropped == []
    assert len(delivered) == 100
    assert most_in_any_window([d.at for d in delivered], MINUTE) == 30
    assert {(await row_of(db, i)).state for i in ids} == {OutboxState.SENT}


async def test_a_budget_spent_by_one_sender_defers_the_others_rows(
    db: Database,
    clock: ManualClock,
    fake_wecom: FakeWecom,
    make_sender: SenderFactory,
    second_sender: Sender,
) -> None:
    start = clock.now()
    for i in range(30):
        await put(db, clock, f"nudge:{i}", messages.text(f"#{i}"))
    assert (await make_sender().run_once()).sent == 30
    late = await put(db, clock, "nudge:late", messages.text("late"))

    report = await second_sender.run_once()

    assert (report.sent, report.deferred) == (0, 1)
    assert (await row_of(db, late)).due_at == start + MINUTE
    clock.set(start + MINUTE)
    assert (await second_sender.run_once()).sent == 1


async def test_spent_buckets_are_pruned_once_their_window_has_passed(
    db: Database, clock: ManualClock
) -> None:
    limiter = SharedRateLimiter(RateLimits(), prune_every=MINUTE)
    async with db.engine.begin() as connection:
        assert await limiter.reserve(connection, [[MEMBER]], clock.now()) == [None]
    assert await spend_rows(db) == 2  # the minute and the hour window

    clock.advance(timedelta(hours=1, seconds=1))
    other = RateKey("member:message/send", "lisi")
    async with db.engine.begin() as connection:
        assert await limiter.reserve(connection, [[other]], clock.now()) == [None]

    async with db.sessions() as session:
        keys = (await session.scalars(select(RateSpend.key))).all()
    assert keys == ["lisi", "lisi"]


async def test_unlimited_scopes_touch_no_table(db: Database, clock: ManualClock) -> None:
    limiter = SharedRateLimiter(RateLimits.unlimited())
    async with db.engine.begin() as connection:
        answers = await limiter.reserve(connection, [[MEMBER]] * 50, clock.now())
    assert answers == [None] * 50
    assert await spend_rows(db) == 0


async def spend_rows(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(RateSpend)) or 0)


async def test_no_window_ever_holds_more_than_the_limit(db: Database, clock: ManualClock) -> None:
    """Claims at random moments (tens of milliseconds to minutes apart), each wanting a few
    sends: the grants, as the platform would count them, never exceed the limit."""
    rng = random.Random(11)
    limiter = SharedRateLimiter(RateLimits({"member": (Rate(5, timedelta(seconds=30)),)}))
    granted: list[datetime] = []
    for _ in range(120):
        clock.advance(timedelta(milliseconds=rng.choice([10, 300, 900, 4000, 31000])))
        async with db.engine.begin() as connection:
            wanted = [[MEMBER]] * rng.randint(1, 3)
            answers = await limiter.reserve(connection, wanted, clock.now())
        for answer in answers:
            if answer is None:
                granted.append(clock.now())
            else:
                assert answer > clock.now()
    assert most_in_any_window(granted, timedelta(seconds=30)) == 5


def test_a_full_window_frees_up_when_enough_sends_have_left_it() -> None:
    start = ManualClock().now()
    window = BucketWindow(Rate(3, MINUTE), counted=3)
    window.buckets = [(start, 1), (start + timedelta(seconds=10), 2)]

    assert window.full
    assert window.free_at(start + timedelta(seconds=30)) == start + MINUTE
    window.counted, window.buckets = 2, [(start + timedelta(seconds=10), 2)]
    window.granted = 1  # this claim's grant, at its instant
    assert window.free_at(start + timedelta(seconds=30)) == start + timedelta(seconds=70)
