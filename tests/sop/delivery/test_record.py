"""Recording outcomes: only rows still ours are written, whichever way the check is made."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from sop.delivery import messages
from sop.delivery.claims import claim_due, mark_sending
from sop.delivery.messages import STAFF_APP
from sop.delivery.outcomes import Decision, Finished, NotAllOurs, record
from store.models import Interaction, OutboxRow, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, add_customer, put, row_of, until

SEND = "message/send"


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


@pytest.mark.parametrize("all_or_nothing", [False, True])
async def test_a_group_writes_only_the_rows_still_ours(
    db: Database, clock: ManualClock, all_or_nothing: bool
) -> None:
    customer_id = await add_customer(db, "wmAlice", clock.now())
    ids = [
        await put(db, clock, f"nudge:{n}", messages.text(f"提醒 {n}"), customer_id=customer_id)
        for n in range(3)
    ]
    now = clock.now()
    async with db.sessions.begin() as session:
        claimed = await claim_due(session, now, [STAFF_APP], 10)
        lease_until = now + timedelta(minutes=5)
        await mark_sending(session, [m.id for m in claimed], now=now, lease_until=lease_until)
    assert [m.attempts for m in claimed] == [1, 1, 1]  # the attempt being made
    await _take_over(db, ids[1])
    sent = Decision(OutboxState.SENT, platform_ids={"msgid": "m1"})
    finished = [Finished(m, sent, f"to {m.recipient}", False) for m in claimed]

    try:
        async with db.sessions.begin() as session:
            written = await record(session, finished, now=now, all_or_nothing=all_or_nothing)
    except NotAllOurs:
        # Only where the driver counts each row of an executemany, and all rolled back.
        assert all_or_nothing and db.engine.dialect.supports_sane_multi_rowcount
        assert (await row_of(db, ids[0])).state is OutboxState.SENDING
        assert await _timeline_outbox_ids(db) == []
        async with db.sessions.begin() as session:
            written = await record(session, finished, now=now)

    assert written == {ids[0], ids[2]}
    for row_id in (ids[0], ids[2]):
        row = await row_of(db, row_id)
        assert (row.state, row.sent_at, row.platform_ids) == (
            OutboxState.SENT,
            now,
            {"msgid": "m1"},
        )
    taken = await row_of(db, ids[1])
    assert (taken.state, taken.attempts) == (OutboxState.SENDING, 2)
    assert await _timeline_outbox_ids(db) == [ids[0], ids[2]]


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
