"""Claiming is not attempting: only rows whose request may have left count, or can be in doubt."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from sop.delivery import RateLimits, messages
from sop.delivery.claims import claim_due, take
from sop.delivery.messages import STAFF_APP, WELCOME
from sop.delivery.writes import mark_attempted
from store.models import OutboxRow, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, put, put_welcome, row_of, until

SEND = "message/send"
MINUTE = timedelta(minutes=1)


async def _claim(db: Database, clock: ManualClock, lease: timedelta) -> list[int]:
    """What a sender that dies right after its claim leaves behind."""
    now = clock.now()
    async with db.engine.begin() as connection:
        claimed = (
            await claim_due(connection, now, [STAFF_APP, WELCOME], 10, urgent_within=MINUTE)
        ).all
        await take(connection, [m.id for m in claimed], now=now, lease_until=now + lease)
    return [m.id for m in claimed]


async def test_rows_claimed_but_never_attempted_go_back_to_pending(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    fake_wecom.outbound.welcome_validity = timedelta(minutes=10)
    code = fake_wecom.add_welcome_code("wmAlice", "zhangsan")
    payload = messages.welcome(code, "你好")
    welcome = await put(db, clock, "welcome:1", payload, channel=WELCOME, recipient="wmAlice")
    nudge = await put(db, clock, "nudge:1", messages.text("回访"))
    sender = make_sender()
    assert sorted(await _claim(db, clock, sender.settings.lease)) == sorted([welcome, nudge])
    clock.advance(sender.settings.lease + timedelta(seconds=1))

    report = await sender.run_once()  # recovers them, then claims and sends them

    assert sorted(report.recovered_released) == sorted([welcome, nudge])
    assert report.recovered_uncertain == []
    for row_id in (welcome, nudge):
        row = await row_of(db, row_id)
        assert (row.state, row.attempts) == (OutboxState.SENT, 1)
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1


async def test_an_attempted_customer_row_is_uncertain_after_the_lease_lapses(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    welcome = await put_welcome(db, clock, fake_wecom)
    sender = make_sender()
    await _claim(db, clock, sender.settings.lease)
    async with db.engine.begin() as connection:
        now = clock.now()
        lease_until = now + sender.settings.lease
        assert await mark_attempted(connection, [welcome], at=now, lease_until=lease_until) == {
            welcome
        }
    clock.advance(sender.settings.lease + timedelta(seconds=1))

    report = await sender.run_once()

    assert report.recovered_uncertain == [welcome]
    row = await row_of(db, welcome)
    assert (row.state, row.attempts, row.attempted_at) == (OutboxState.UNCERTAIN, 1, now)
    assert fake_wecom.calls_to("externalcontact/send_welcome_msg") == []


async def test_a_mark_is_ours_once_even_when_written_twice(
    db: Database, clock: ManualClock
) -> None:
    """A write retried after its commit was lost marks again with the same time: the rows
    are still ours, counted once; another sender's mark is not."""
    ids = [await put(db, clock, f"nudge:{n}", messages.text(f"#{n}")) for n in range(2)]
    await _claim(db, clock, timedelta(minutes=5))
    now, later = clock.now(), clock.now() + timedelta(seconds=1)
    lease_until = now + timedelta(minutes=5)
    async with db.engine.begin() as connection:
        assert await mark_attempted(connection, ids[:1], at=now, lease_until=lease_until) == {
            ids[0]
        }
    async with db.engine.begin() as connection:
        again = await mark_attempted(connection, ids, at=now, lease_until=lease_until)
        other = await mark_attempted(connection, ids, at=later, lease_until=lease_until)
    assert (again, other) == (set(ids), set())
    assert [(await row_of(db, i)).attempts for i in ids] == [1, 1]


async def test_a_stopping_sender_gives_back_the_rows_it_has_not_attempted(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    ids = [await put(db, clock, f"nudge:{n}", messages.text(f"#{n}")) for n in range(10)]
    fake_wecom.delay(SEND, 0.5)
    sender = make_sender(
        batch_size=10, concurrency=2, limits=RateLimits.unlimited(), idle_seconds=30
    )
    wake, stopping = asyncio.Event(), asyncio.Event()
    running = asyncio.ensure_future(sender.run_forever(wake, stopping))
    await until(lambda: len(fake_wecom.calls_to(SEND)) == 2, what="two sends in flight")
    stopping.set()
    await asyncio.wait_for(running, timeout=10)

    async with db.sessions() as session:
        rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
    assert [r.id for r in rows] == ids
    assert [(r.state, r.attempts) for r in rows[:2]] == [(OutboxState.SENT, 1)] * 2
    assert [(r.state, r.attempts, r.lease_until) for r in rows[2:]] == [
        (OutboxState.PENDING, 0, None)
    ] * 8
    assert len(fake_wecom.calls_to(SEND)) == 2
