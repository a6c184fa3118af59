"""Heartbeats in ``processes``: who is alive, and what a process that stopped beating left."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from store.liveness import ALIVE_WITHIN, Liveness, alive_tokens
from store.models import ProcessRow
from tests.support.clock import ManualClock
from tests.support.database import Database


async def _alive(db: Database, clock: ManualClock) -> set[int]:
    async with db.sessions() as session:
        return set((await session.scalars(alive_tokens(clock.now()))).all())


async def test_a_beating_process_is_alive_and_a_silent_one_is_not(
    db: Database, clock: ManualClock
) -> None:
    first = Liveness(db.sessions, clock.now, role="worker")
    second = Liveness(db.sessions, clock.now, role="all")
    await first.register()
    await second.register()
    assert first.token != second.token
    assert await _alive(db, clock) == {first.token, second.token}
    clock.advance(ALIVE_WITHIN - timedelta(seconds=1))
    await first.beat()
    clock.advance(timedelta(seconds=2))
    assert await _alive(db, clock) == {first.token}  # second missed its beats


async def test_leaving_removes_the_row_and_beating_again_registers_anew(
    db: Database, clock: ManualClock
) -> None:
    process = Liveness(db.sessions, clock.now, role="worker")
    token = await process.register()
    await process.leave()
    assert await _alive(db, clock) == set()
    await process.beat()  # taken for dead and removed: it comes back under a new token
    assert process.token != token
    assert await _alive(db, clock) == {process.token}


async def test_rows_of_processes_gone_for_a_day_are_forgotten(
    db: Database, clock: ManualClock
) -> None:
    await Liveness(db.sessions, clock.now, role="worker").register()
    clock.advance(timedelta(days=2))
    newcomer = Liveness(db.sessions, clock.now, role="web")
    await newcomer.register()
    async with db.sessions() as session:
        rows = (await session.scalars(select(ProcessRow))).all()
    assert [(row.token, row.role) for row in rows] == [(newcomer.token, "web")]
