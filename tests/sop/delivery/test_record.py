"""Recording outcomes: only rows still ours are written, whichever way the check is made."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from sop.delivery import messages
from sop.delivery.claims import claim_due, take
from sop.delivery.messages import STAFF_APP
from sop.delivery.outcomes import Decision, Finished
from sop.delivery.writes import mark_attempted, record
from store.models import Interaction, OutboxRow, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, add_customer, put, row_of, until

SEND = "message/send"
MINUTE = timedelta(minutes=1)


async def _take_over(db: Database, row_id: int) -> None:
    """What another sender does to a row whose lease lapsed: claims it for its own attempt."""
    async with db.sessions.begin() as session:
        await session.execute(
            update(OutboxRow).where(OutboxRow.id == row_id).values(attempts=OutboxRow.attempts + 1)
        )


async def _timeline_outbox_ids(db: Database) -> list[int]:
    async with db.sessions() as session:
        entries = (await session.scalars(select(Interaction))).all()
    return sorted(entry.data["outbox_id"] for entry in entries)


async def test_a_group_writes_only_the_rows_still_ours(db: Database, clock: ManualClock) -> None:
    customer_id = await add_customer(db, "wmAlice", clock.now())
    ids = [
        await put(db, clock, f"nudge:{n}", messages.text(f"提醒 {n}"), customer_id=customer_id)
        for n in range(3)
    ]
    now = clock.now()
    lease_until = now + timedelta(minutes=5)
    async with db.engine.begin() as connection:
        claimed = (await claim_due(connection, now, [STAFF_APP], 10, urgent_within=MINUTE)).all
        await take(connection, [m.id for m in claimed], now=now, lease_until=lease_until)
        marked = await mark_attempted(connection, ids, at=now, lease_until=lease_until)
    assert marked == set(ids)
    assert [m.attempts for m in claimed] == [1, 1, 1]  # the attempt being made
    await _take_over(db, ids[1])
    sent = Decision(OutboxState.SENT, platform_ids={"msgid": "m1"})
    finished = [Finished(m, sent, f"to {m.recipient}", False) for m in claimed]

    async with db.engine.begin() as connection:
        written = await record(connection, finished, now=now)

    assert written == {ids[0], ids[2]}
    for row_id in (ids[0], ids[2]):
        row = await row_of(db, row_id)
        assert (row.state, row.sent_at, row.platform_ids, row.lease_until) == (
            OutboxState.SENT,
            now,
            {"msgid": "m1"},
            None,
        )
    taken = await row_of(db, ids[1])
    assert (taken.state, taken.attempts) == (OutboxState.SENDING, 2)
    assert await _timeline_outbox_ids(db) == [ids[0], ids[2]]


async def test_each_decision_is_written_with_its_own_values(
    db: Database, clock: ManualClock
) -> None:
    ids = [await put(db, clock, f"nudge:{n}", messages.text(f"#{n}")) for n in range(4)]
    now = clock.now()
    lease_until = now + timedelta(minutes=5)
    async with db.engine.begin() as connection:
        claimed = (await claim_due(connection, now, [STAFF_APP], 10, urgent_within=MINUTE)).all
        await take(connection, ids, now=now, lease_until=lease_until)
        await mark_attempted(connection, ids, at=now, lease_until=lease_until)
    retry_at, settle_at = now + timedelta(seconds=7), now + timedelta(minutes=2)
    decisions = [
        Decision(OutboxState.SENT, platform_ids={"msgid": "m0", "response_code": "r"}),
        Decision(OutboxState.PENDING, -1, "system busy", retry_at),
        Decision(OutboxState.FAILED, 81013, "nobody to send to"),
        Decision(OutboxState.UNCERTAIN, None, "answer lost", settle_at=settle_at),
    ]
    finished = [Finished(m, d, "", False) for m, d in zip(claimed, decisions, strict=True)]

    async with db.engine.begin() as connection:
        assert await record(connection, finished, now=now) == set(ids)

    rows = [await row_of(db, row_id) for row_id in ids]
    assert [(r.state, r.last_errcode, r.last_error) for r in rows] == [
        (OutboxState.SENT, None, None),
        (OutboxState.PENDING, -1, "system busy"),
        (OutboxState.FAILED, 81013, "nobody to send to"),
        (OutboxState.UNCERTAIN, None, "answer lost"),
    ]
    assert rows[0].platform_ids == {"msgid": "m0", "response_code": "r"}
    assert [r.sent_at for r in rows] == [now, None, None, None]
    assert [r.due_at for r in rows] == [now, retry_at, now, now]
    assert [r.settle_at for r in rows] == [None, None, None, settle_at]
    async with db.engine.connect() as connection:  # the stored forms still compare as times
        due = OutboxRow.due_at <= now + timedelta(seconds=7)
        query = select(OutboxRow.id).where(due, OutboxRow.settle_at > now)
        assert (await connection.execute(query)).scalars().all() == [ids[3]]


async def test_a_sender_leaves_alone_a_row_that_changed_hands_while_it_was_sent(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    kept = await put(db, clock, "nudge:1", messages.text("回访"))
    lost = await put(db, clock, "nudge:2", messages.text("回访"), recipient="lisi")
    fake_wecom.delay(SEND, 2)  # long enough to take one row over while both are in flight
    sending = asyncio.ensure_future(make_sender().run_once())
    await until(lambda: len(fake_wecom.calls_to(SEND)) == 2, what="both sends in flight")
    await _take_over(db, lost)
    report = await sending

    assert report.outcomes == {kept: OutboxState.SENT}
    assert (await row_of(db, kept)).state is OutboxState.SENT
    taken = await row_of(db, lost)
    assert (taken.state, taken.attempts, taken.sent_at) == (OutboxState.SENDING, 2, None)
