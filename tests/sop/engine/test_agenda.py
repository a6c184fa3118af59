"""Claims with leases: each row executed once by engines side by side, and a crashed
engine's rows recovered after their lease."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from sop.engine.agenda import claim_due, reacquire
from store.models import AgendaState, OutboxRow, StepRun
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database


async def _enroll_many(h: Harness, count: int) -> None:
    await h.playbook("many", steps=[{"tag": "a"}, {"tag": "b"}])
    for n in range(count):
        await h.enroll("many", await h.customer(f"wm{n}"))


async def test_two_engines_execute_each_row_exactly_once(db: Database, clock: ManualClock) -> None:
    if db.backend != "postgres":
        pytest.skip("SQLite has one writer: concurrent engines are a PostgreSQL setup")
    h = Harness(db, clock)
    h.settings = h.settings.model_copy(update={"batch_size": 7})
    await _enroll_many(h, 40)
    first, second = h.engine(), h.engine()
    counts = await asyncio.gather(first.run_once(), second.run_once())
    assert sum(counts) == 80
    async with db.sessions() as session:
        runs = (await session.execute(select(StepRun.enrollment_id, StepRun.seq))).all()
        outbox = await session.scalar(select(func.count(OutboxRow.id)))
    assert len(runs) == len(set(runs)) == 80
    assert outbox == 80


async def test_a_crashed_engines_rows_run_again_after_the_lease(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await _enroll_many(h, 2)
    async with db.sessions.begin() as session:  # an engine claims, then dies
        claims = await claim_due(session, now=clock.now(), limit=10, lease=timedelta(minutes=5))
    assert len(claims) == 2

    assert await h.run() == 0  # still leased: nobody else touches them
    clock.advance(timedelta(minutes=5, seconds=1))
    assert await h.run() == 4  # recovered, then the second steps

    async with db.sessions.begin() as session:  # the dead engine's token is no longer valid
        assert await reacquire(session, claims[0]) is None
    agenda = await h.agenda(claims[0].enrollment_id)
    assert [(a.state, a.attempts) for a in agenda] == [
        (AgendaState.DONE, 2),
        (AgendaState.DONE, 1),
    ]
    assert len(await h.outbox()) == 4
