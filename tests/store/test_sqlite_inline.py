"""The in-loop SQLite driver behind SQLite file engines: transactions, errors, and lock waits."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from store.db import create_engine, inline_sqlite
from store.sqlite_inline import INLINE_BUSY_TIMEOUT_MS, InlineConnection, inline_creator


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'inline.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)"))
        await conn.execute(text("CREATE TABLE n (id INTEGER PRIMARY KEY, count INTEGER)"))
        await conn.execute(text("INSERT INTO n (id, count) VALUES (1, 0)"))
    yield engine
    await engine.dispose()


async def values(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.scalars(text("SELECT v FROM t ORDER BY id"))).all())


async def test_file_engines_use_the_inline_driver_with_the_toolkit_pragmas(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert isinstance(raw.driver_connection, InlineConnection)
        assert (await conn.scalar(text("PRAGMA journal_mode"))) == "wal"
        assert (await conn.scalar(text("PRAGMA foreign_keys"))) == 1
        assert (await conn.scalar(text("PRAGMA busy_timeout"))) == INLINE_BUSY_TIMEOUT_MS


async def test_memory_engines_keep_aiosqlite() -> None:
    engine = create_engine("sqlite://")
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert not isinstance(raw.driver_connection, InlineConnection)
    finally:
        await engine.dispose()


async def test_commit_keeps_and_rollback_discards(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('kept')"))
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('dropped')"))
        await conn.rollback()
    assert await values(engine) == ["kept"]


async def test_savepoint_rolls_back_alone(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('outer')"))
        nested = await conn.begin_nested()
        await conn.execute(text("INSERT INTO t (v) VALUES ('inner')"))
        await nested.rollback()
        async with conn.begin_nested():
            await conn.execute(text("INSERT INTO t (v) VALUES ('second')"))
    assert await values(engine) == ["outer", "second"]


async def test_constraint_errors_map_to_sqlalchemy_and_free_the_writer(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('b')"))
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
    async with engine.begin() as conn:  # the failed transaction left no lock behind
        await conn.execute(text("INSERT INTO t (v) VALUES ('c')"))
    assert await values(engine) == ["a", "c"]


async def test_concurrent_transactions_on_the_pool_serialise(engine: AsyncEngine) -> None:
    async def bump() -> None:
        async with engine.begin() as conn:
            count = await conn.scalar(text("SELECT count FROM n WHERE id = 1"))
            await asyncio.sleep(0)  # let the others try to begin meanwhile
            await conn.execute(text("UPDATE n SET count = :c WHERE id = 1"), {"c": count + 1})

    await asyncio.gather(*(bump() for _ in range(20)))
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count FROM n WHERE id = 1")) == 20


async def test_a_lock_held_elsewhere_does_not_block_the_loop(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (v) VALUES ('after')"))

        writer = asyncio.create_task(write())
        for _ in range(10):  # these only run if the waiting writer leaves the loop free
            await asyncio.sleep(0.01)
        assert not writer.done()
        other.execute("INSERT INTO t (v) VALUES ('first')")
        other.execute("COMMIT")
        await writer
    finally:
        other.close()
    assert await values(engine) == ["first", "after"]


async def test_an_own_connection_on_the_engine_gate_waits_for_the_engine(
    engine: AsyncEngine,
) -> None:
    inline = inline_sqlite(engine)
    assert inline is not None
    raw = sqlite3.connect(inline.path, timeout=0, isolation_level=None)
    own = InlineConnection(raw, inline.gate, inline.busy_timeout_ms)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('engine')"))
            waiting = asyncio.create_task(own.begin())
            for _ in range(5):
                await asyncio.sleep(0)
            assert not waiting.done()
            assert not own.raw.in_transaction
        await waiting
        own.raw.execute("INSERT INTO t (v) VALUES ('own')")
        assert inline.gate.lock().locked()
        await own.commit()
        assert not inline.gate.lock().locked()
    finally:
        own.stop()
    assert await values(engine) == ["engine", "own"]


async def test_memory_and_custom_engines_have_no_inline_gate(tmp_path: Path) -> None:
    memory = create_engine("sqlite://")
    custom = create_engine(
        f"sqlite:///{tmp_path / 'c.db'}", creator=lambda: sqlite3.connect(tmp_path / "c.db")
    )
    try:
        assert inline_sqlite(memory) is None
        assert inline_sqlite(custom) is None
    finally:
        await memory.dispose()
        await custom.dispose()


async def test_begin_gives_up_as_locked_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "short.db"
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", async_creator=inline_creator(str(path), busy_timeout_ms=50)
    )
    try:
        async with engine.connect() as holder:
            await holder.exec_driver_sql("BEGIN IMMEDIATE")
            async with engine.connect() as waiter:
                with pytest.raises(OperationalError, match="database is locked"):
                    await waiter.exec_driver_sql("BEGIN IMMEDIATE")
            await holder.rollback()
    finally:
        await engine.dispose()


async def test_server_side_cursors_stream(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for v in ("x", "y", "z"):
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v})
    async with engine.connect() as conn:
        result = await conn.stream(text("SELECT v FROM t ORDER BY id"))
        assert [row.v async for row in result] == ["x", "y", "z"]


async def test_a_long_transaction_lets_other_tasks_run(engine: AsyncEngine) -> None:
    other_ran = asyncio.Event()

    async def other() -> None:
        other_ran.set()

    async with engine.begin() as conn:
        task = asyncio.create_task(other())
        for _ in range(100_000):  # inline statements never suspend by themselves
            await conn.execute(text("SELECT 1"))
            if other_ran.is_set():
                break
        assert other_ran.is_set()
    await task


async def test_checkpoints_run_on_a_worker_thread_not_in_the_loops_commits(
    engine: AsyncEngine,
) -> None:
    creator = inline_sqlite(engine)
    assert creator is not None and creator.gate.checkpointer is not None
    checkpointer = creator.gate.checkpointer
    checkpointer.every = 2
    async with engine.connect() as conn:
        assert (await conn.scalar(text("PRAGMA wal_autocheckpoint"))) == 0
    for n in range(4):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"row{n}"})
    await checkpointer.run()  # waits for the one the commits started, then runs one more
    assert checkpointer.done >= 2
    with sqlite3.connect(checkpointer.path) as plain:
        busy, logged, copied = plain.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert (busy, logged) == (0, copied)
    assert await values(engine) == [f"row{n}" for n in range(4)]
