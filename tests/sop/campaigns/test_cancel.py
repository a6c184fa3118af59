"""Cancelling a mass run: pending rows are cancelled, accepted unfinished mass jobs are marked
for withdrawal (the bot's collector calls WeCom); both backends, a manual clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from sop.campaigns import control
from store.models import MassJob, OutboxRow, OutboxState, RunState
from tests.sop.campaigns.test_fanout import start
from tests.sop.campaigns.world import campaign, outbox_rows, seed
from tests.support.clock import ManualClock
from tests.support.database import Database


async def _accepted(
    db: Database, clock: ManualClock, row: OutboxRow, *, finished: bool = False
) -> None:
    """As the mass channel leaves a row WeCom accepted: sent, with its job."""
    now = clock.now()
    async with db.sessions.begin() as session:
        fresh = await session.get(OutboxRow, row.id)
        assert fresh is not None
        fresh.state, fresh.sent_at, fresh.updated_at = OutboxState.SENT, now, now
        session.add(
            MassJob(
                outbox_id=row.id,
                msgid=f"msg{row.id}",
                sender=row.recipient,
                chat_type="single",
                accepted_at=now,
                next_poll_at=now + timedelta(hours=1),
                finished_at=now if finished else None,
                updated_at=now,
            )
        )


async def _jobs(db: Database) -> dict[str, MassJob]:
    async with db.sessions() as session:
        return {j.msgid: j for j in (await session.scalars(select(MassJob))).all()}


async def test_cancel_asks_to_withdraw_only_the_runs_unfinished_mass_jobs(
    db: Database, clock: ManualClock
) -> None:
    await seed(db, clock)
    variants = [{"name": "a", "split": 50, "text": "甲"}, {"name": "b", "split": 50, "text": "乙"}]
    await start(db, clock, campaign(variants=variants))
    rows = await outbox_rows(db)
    assert len(rows) == 3  # one add_msg_template per owner and variant
    await start(db, clock, campaign("other", frequency_cap=False))
    other = [r for r in await outbox_rows(db) if r.id not in {row.id for row in rows}]
    pending, unfinished, finished = rows
    await _accepted(db, clock, unfinished)
    await _accepted(db, clock, finished, finished=True)
    await _accepted(db, clock, other[0])
    clock.advance(timedelta(minutes=10))

    async with db.sessions.begin() as session:
        cancelled = await control.cancel(session, "vip", now=clock.now())

    assert cancelled.run.state is RunState.CANCELLED
    assert (cancelled.rows, cancelled.withdrawals) == (1, 1)
    jobs = await _jobs(db)
    marked = {m for m, j in jobs.items() if j.withdraw_requested_at is not None}
    assert marked == {f"msg{unfinished.id}"}
    assert jobs[f"msg{unfinished.id}"].next_poll_at == clock.now()
    untouched = jobs[f"msg{other[0].id}"]
    assert untouched.next_poll_at == clock.now() + timedelta(minutes=50)
    states = {r.id: r.state for r in await outbox_rows(db)}
    assert states[pending.id] is OutboxState.CANCELLED
    assert states[unfinished.id] is OutboxState.SENT  # accepted: withdrawn by the collector
