"""Claims: each row executed once by engines side by side; a claim that never commits
leaves its rows due; rows an earlier release left running are recovered after their lease."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from sop.engine.agenda import claim
from store.models import AgendaItem, AgendaState, OutboxRow, StepRun
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database


async def _enroll_many(h: Harness, count: int) -> list[int]:
    await h.playbook("many", steps=[{"tag": "a"}, {"tag": "b"}])
    return [await h.enroll("many", await h.customer(f"wm{n}")) for n in range(count)]


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


async def test_a_claim_that_never_commits_leaves_its_rows_due_at_once(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    first, _ = await _enroll_many(h, 2)
    async with db.sessions() as session:  # an engine claims, then dies before committing
        connection = await session.connection()
        claimed = await claim(connection, now=clock.now(), limit=10)
        assert len(claimed) == 2
        if db.backend == "postgres":  # meanwhile another engine skips the locked rows
            assert await h.engine().run_once() == 0
        await session.rollback()

    assert await h.run() == 4  # at once, then the second steps
    agenda = await h.agenda(first)
    assert [(a.state, a.attempts) for a in agenda] == [
        (AgendaState.DONE, 0),
        (AgendaState.DONE, 0),
    ]
    assert len(await h.outbox()) == 4


async def test_a_row_left_running_by_an_earlier_release_runs_after_its_lease(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    (enrollment,) = await _enroll_many(h, 1)
    async with db.sessions.begin() as session:  # claimed the old way, then the engine died
        await session.execute(
            update(AgendaItem).values(
                state=AgendaState.RUNNING, lease_until=clock.now() + timedelta(minutes=5)
            )
        )
    assert await h.run() == 0
    clock.advance(timedelta(minutes=5, seconds=1))
    assert await h.run() == 2
    assert [a.state for a in await h.agenda(enrollment)] == [
        AgendaState.DONE,
        AgendaState.DONE,
    ]
