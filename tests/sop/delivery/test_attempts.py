"""Claiming is not attempting: only rows whose request may have left count, or can be in doubt."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from sop.delivery import RateLimits, messages
from sop.delivery.channel import Channel
from sop.delivery.claims import claim_due, recover_lapsed, take
from sop.delivery.messages import STAFF_APP, WELCOME
from sop.delivery.sender import Sender
from sop.delivery.writes import mark_attempted
from store.liveness import ALIVE_WITHIN, Liveness
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


async def _claim_as(db: Database, clock: ManualClock, process: Liveness) -> list[int]:
    """What a sender of ``process`` leaves behind when it is killed right after its claim."""
    now = clock.now()
    async with db.engine.begin() as connection:
        claimed = (
            await claim_due(connection, now, [STAFF_APP, WELCOME], 10, urgent_within=MINUTE)
        ).all
        await take(
            connection,
            [m.id for m in claimed],
            now=now,
            lease_until=now + timedelta(minutes=5),
            claimed_by=process.token,
        )
    return [m.id for m in claimed]


async def test_rows_of_a_process_that_stopped_beating_are_taken_back_within_seconds(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, channels: list[Channel]
) -> None:
    """A SIGKILLed sender's welcome must not wait out a 5-minute lease: its code lives 20 s."""
    welcome = await put_welcome(db, clock, fake_wecom)
    killed = Liveness(db.sessions, clock.now, role="worker")
    survivor = Liveness(db.sessions, clock.now, role="worker")
    await killed.register()
    await survivor.register()
    await _claim_as(db, clock, killed)
    sender = Sender(db.sessions, channels, clock, process=survivor)

    assert (await sender.run_once()).recovered_released == []  # the claimer still beats
    clock.advance(ALIVE_WITHIN + timedelta(seconds=1))
    await survivor.beat()  # ... and now only the survivor does

    report = await sender.run_once()
    assert report.recovered_released == [welcome]
    row = await row_of(db, welcome)
    assert (row.state, row.claimed_by) == (OutboxState.SENT, survivor.token)
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1


async def test_a_process_taken_for_dead_cannot_mark_rows_another_took_over(
    db: Database, clock: ManualClock
) -> None:
    """It was only stalled: when it wakes up, the rows are another's, and it sends none."""
    row = await put(db, clock, "nudge:1", messages.text("回访"))
    stalled = Liveness(db.sessions, clock.now, role="worker")
    other = Liveness(db.sessions, clock.now, role="worker")
    await stalled.register()
    await other.register()
    await _claim_as(db, clock, stalled)
    clock.advance(ALIVE_WITHIN + timedelta(seconds=1))
    await other.beat()
    async with db.engine.begin() as connection:  # the other's claim takes the row back
        now = clock.now()
        recovered = await recover_lapsed(connection, now, set(), {}, me=other.token)
        assert recovered.released == [row]
        await take(connection, [row], now=now, lease_until=now + MINUTE, claimed_by=other.token)
    async with db.engine.begin() as connection:
        now = clock.now()
        lease = now + MINUTE
        assert (
            await mark_attempted(
                connection, [row], at=now, lease_until=lease, claimed_by=stalled.token
            )
            == set()
        )
        assert await mark_attempted(
            connection, [row], at=now, lease_until=lease, claimed_by=other.token
        ) == {row}


async def test_rows_a_failed_drain_left_sending_are_taken_back_by_the_next_one(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, channels: list[Channel]
) -> None:
    """A drain that failed half way (a broken connection's state, a bug) left rows of this
    very process ``sending``; the process is alive, so no other sender takes them, and their
    lease is minutes: its next drain takes them back at once."""
    welcome = await put_welcome(db, clock, fake_wecom)
    process = Liveness(db.sessions, clock.now, role="all")
    await process.register()
    await _claim_as(db, clock, process)
    sender = Sender(db.sessions, channels, clock, process=process)

    report = await sender.run_once()

    assert report.recovered_released == [welcome]
    assert (await row_of(db, welcome)).state is OutboxState.SENT
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1
