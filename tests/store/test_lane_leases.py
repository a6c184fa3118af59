"""Lanes spread over the processors of one PostgreSQL database and follow them as they come
and go (advisory locks on each processor's own connection)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import text

from store.db import create_engine
from store.lane_leases import AdvisoryLaneLeases, AllLanes
from tests.support.database import Database

LANES = 64


@asynccontextmanager
async def members(url: str, count: int) -> AsyncIterator[list[AdvisoryLaneLeases]]:
    """``count`` processors, each with its own engine (as separate processes would have)."""
    engines = [create_engine(url) for _ in range(count)]
    leases = [
        AdvisoryLaneLeases(engine, LANES, rebalance_seconds=0, rng=random.Random(i))
        for i, engine in enumerate(engines)
    ]
    try:
        yield leases
    finally:
        for lease in leases:
            await lease.close()
        for engine in engines:
            await engine.dispose()


async def settle(leases: Sequence[AdvisoryLaneLeases], rounds: int = 4) -> None:
    for _ in range(rounds):
        for lease in leases:
            await lease.rebalance()


def assert_partition(leases: Sequence[AdvisoryLaneLeases]) -> None:
    held = [lease.held for lease in leases]
    assert sum(len(h) for h in held) == LANES
    assert frozenset().union(*held) == frozenset(range(LANES))


async def test_one_processor_owns_every_lane(postgres_db: Database) -> None:
    async with members(postgres_db.url, 1) as [only]:
        assert await only.current() == frozenset(range(LANES))


async def test_lanes_are_shared_fairly_and_never_twice(postgres_db: Database) -> None:
    async with members(postgres_db.url, 3) as leases:
        await settle(leases)
        assert_partition(leases)
        assert sorted(len(lease.held) for lease in leases) == [20, 22, 22]


async def test_a_new_processor_gets_its_share(postgres_db: Database) -> None:
    async with members(postgres_db.url, 2) as [first, second]:
        await first.rebalance()
        assert len(first.held) == LANES
        await settle([second, first, second])
        assert_partition([first, second])
        assert len(first.held) == len(second.held) == LANES // 2


async def test_a_killed_processors_lanes_are_taken_over(postgres_db: Database) -> None:
    async with members(postgres_db.url, 2) as [survivor, victim]:
        await settle([survivor, victim])
        assert len(victim.held) == LANES // 2
        # SIGKILL of its process: the server ends the session, and the locks go with it.
        async with postgres_db.engine.connect() as admin:
            await admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = :lane AND granted"
                ),
                {"lane": min(victim.held)},
            )
        await survivor.rebalance()
        assert survivor.held == frozenset(range(LANES))


async def test_a_processor_that_lost_its_connection_owns_nothing_until_it_rejoins(
    postgres_db: Database,
) -> None:
    async with members(postgres_db.url, 1) as [lease]:
        await lease.rebalance()
        async with postgres_db.engine.connect() as admin:
            await admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
                )
            )
        await lease.rebalance()  # finds its connection dead
        assert lease.held == frozenset()
        await lease.rebalance()  # a new connection, new locks
        assert lease.held == frozenset(range(LANES))


async def test_a_graceful_stop_gives_the_lanes_back_at_once(postgres_db: Database) -> None:
    async with members(postgres_db.url, 2) as [staying, leaving]:
        await settle([staying, leaving])
        await leaving.close()
        await staying.rebalance()
        assert staying.held == frozenset(range(LANES))


async def test_sqlite_owns_every_lane_without_locks() -> None:
    assert await AllLanes().current() is None
