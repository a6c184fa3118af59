"""Which database errors are retried, on the real databases: a real deadlock, a killed
connection and a busy SQLite file are; a constraint violation is not."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError

from store.models import Customer
from store.transient import Backoff, is_transient, retry_transient, sqlstate
from tests.support.database import Database

log = logging.getLogger(__name__)
NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


async def _two_customers(db: Database) -> None:
    async with db.sessions.begin() as session:
        session.add_all(
            [
                Customer(external_userid="wmA", created_at=NOW),
                Customer(external_userid="wmB", created_at=NOW),
            ]
        )


async def _rename_both(
    db: Database, first: str, second: str, both_hold_one: asyncio.Barrier
) -> None:
    """Lock ``first``, wait until the other transaction holds its first row, then ``second``."""
    async with db.sessions.begin() as session:
        for index, key in enumerate((first, second)):
            await session.execute(
                update(Customer).where(Customer.external_userid == key).values(name=first)
            )
            if index == 0:
                await both_hold_one.wait()


async def test_a_real_deadlock_is_transient_and_retried(postgres_db: Database) -> None:
    db = postgres_db
    await _two_customers(db)
    attempts = {"wmA": 0, "wmB": 0}
    barrier = asyncio.Barrier(2)

    def rename(first: str, second: str) -> Callable[[], Awaitable[None]]:
        async def attempt() -> None:
            attempts[first] += 1
            # The first attempts meet at the barrier and deadlock; a retry goes straight through.
            meet = barrier if attempts[first] == 1 else asyncio.Barrier(1)
            await _rename_both(db, first, second, meet)

        return attempt

    await asyncio.gather(
        retry_transient(rename("wmA", "wmB"), what="A then B", log=log),
        retry_transient(rename("wmB", "wmA"), what="B then A", log=log),
    )
    # PostgreSQL broke the deadlock by failing one of them; that one ran again and committed.
    assert sorted(attempts.values()) == [1, 2]


async def test_the_deadlock_error_carries_its_sqlstate(postgres_db: Database) -> None:
    db = postgres_db
    await _two_customers(db)
    barrier = asyncio.Barrier(2)
    results = await asyncio.gather(
        _rename_both(db, "wmA", "wmB", barrier),
        _rename_both(db, "wmB", "wmA", barrier),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert sqlstate(errors[0]) == "40P01"
    assert is_transient(errors[0])


async def test_a_constraint_violation_is_not_retried(db: Database) -> None:
    await _two_customers(db)
    attempts = 0

    async def duplicate() -> None:
        nonlocal attempts
        attempts += 1
        async with db.sessions.begin() as session:
            session.add(Customer(external_userid="wmA", created_at=NOW))

    with pytest.raises(IntegrityError) as raised:
        await retry_transient(duplicate, what="duplicate", log=log)
    assert attempts == 1
    assert not is_transient(raised.value)


async def test_a_killed_connection_is_transient(postgres_db: Database) -> None:
    db = postgres_db
    async with db.engine.connect() as victim:
        pid = (await victim.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with db.engine.connect() as killer:
            await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(Exception) as raised:
            await victim.execute(text("SELECT 1"))
    assert is_transient(raised.value)


async def test_a_busy_sqlite_file_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            other.execute("BEGIN IMMEDIATE")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        other.close()
    assert is_transient(raised.value)


async def test_a_transient_error_that_outlasts_the_attempts_is_raised() -> None:
    attempts = 0

    async def always_busy() -> None:
        nonlocal attempts
        attempts += 1
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError):
        await retry_transient(
            always_busy, what="busy", log=log, backoff=Backoff(attempts=3, first=0.001)
        )
    assert attempts == 3


def test_a_connection_left_mid_statement_by_a_cut_is_transient() -> None:
    """What asyncpg raises on a connection whose last statement was cut by a restart."""
    from asyncpg.exceptions import InternalClientError

    error = InternalClientError("cannot switch to state 12; another operation (2) is in progress")
    assert is_transient(error)
    assert not is_transient(InternalClientError("unexpected message"))
