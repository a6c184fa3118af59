"""Group commit on both databases: dedupe, batching, failures, flush on stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.callback.inbox_insert import CoreInsert, SqliteInlineInsert, batch_insert_for
from bot.callback.inbox_writer import InboxWriteError, InboxWriter, WriterClosed
from store.db import create_engine, session_factory
from store.models import InboxRow, InboxState
from tests.support.clock import ManualClock
from tests.support.database import Database, deadlocks


@asynccontextmanager
async def running(writer: InboxWriter) -> AsyncIterator[InboxWriter]:
    await writer.start()
    try:
        yield writer
    finally:
        await writer.stop()


async def rows(db: Database) -> list[InboxRow]:
    async with db.sessions() as session:
        return list((await session.scalars(select(InboxRow).order_by(InboxRow.id))).all())


@asynccontextmanager
async def inbox_table_missing(db: Database) -> AsyncIterator[None]:
    """A real database failure: the inbox table is renamed away, then back."""
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE inbox RENAME TO inbox_away"))
    try:
        yield
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE inbox_away RENAME TO inbox"))


async def test_new_then_duplicate(db: Database, clock: ManualClock) -> None:
    first_seen = clock.now()
    async with running(InboxWriter(db.sessions, clock)) as writer:
        assert await writer.accept("wecom:a", "k1", "xml", "<xml>1</xml>") is True
        clock.advance(5)
        assert await writer.accept("wecom:a", "k1", "xml", "<xml>1</xml>") is False
    [row] = await rows(db)
    assert (row.source, row.dedupe_key, row.content_type, row.payload) == (
        "wecom:a",
        "k1",
        "xml",
        "<xml>1</xml>",
    )
    assert row.state is InboxState.PENDING
    assert row.received_at == first_seen
    assert writer.stats.rows_inserted == 1
    assert writer.stats.duplicates == 1


async def test_concurrent_callbacks_share_transactions(db: Database, clock: ManualClock) -> None:
    keys = [f"k{i % 40}" for i in range(120)]  # every key three times
    async with running(InboxWriter(db.sessions, clock)) as writer:
        results = await asyncio.gather(
            *(writer.accept("wecom:a", key, "xml", f"<xml>{key}</xml>") for key in keys)
        )
    assert len(await rows(db)) == 40
    for key in set(keys):
        assert [r for k, r in zip(keys, results, strict=True) if k == key].count(True) == 1
    assert writer.stats.batches < len(keys)
    assert writer.stats.rows_inserted == 40


async def test_batches_never_exceed_max_batch(db: Database, clock: ManualClock) -> None:
    async with running(InboxWriter(db.sessions, clock, max_batch=8)) as writer:
        await asyncio.gather(*(writer.accept("s", f"k{i}", "json", "{}") for i in range(50)))
    assert writer.stats.largest_batch <= 8
    assert writer.stats.batches >= 7
    assert len(await rows(db)) == 50


async def test_on_new_rows_only_after_inserting(db: Database, clock: ManualClock) -> None:
    woken: list[int] = []
    writer = InboxWriter(db.sessions, clock, on_new_rows=lambda: woken.append(1))
    async with running(writer):
        await writer.accept("s", "k1", "json", "{}")
        assert len(woken) == 1
        await writer.accept("s", "k1", "json", "{}")
        assert len(woken) == 1
        await writer.accept("s", "k2", "json", "{}")
        assert len(woken) == 2


async def test_database_error_fails_the_batch_and_the_writer_goes_on(
    db: Database, clock: ManualClock
) -> None:
    async with running(InboxWriter(db.sessions, clock)) as writer:
        async with inbox_table_missing(db):
            with pytest.raises(InboxWriteError):
                await writer.accept("s", "k1", "json", "{}")
        assert writer.stats.failed_batches == 1
        assert await writer.accept("s", "k1", "json", "{}") is True
    assert [r.dedupe_key for r in await rows(db)] == ["k1"]


async def test_stop_flushes_and_then_refuses(db: Database, clock: ManualClock) -> None:
    writer = InboxWriter(db.sessions, clock)
    await writer.start()
    pending = [asyncio.create_task(writer.accept("s", f"k{i}", "json", "{}")) for i in range(5)]
    await asyncio.sleep(0)  # let them queue
    await writer.stop()
    assert [await task for task in pending] == [True] * 5
    assert len(await rows(db)) == 5
    with pytest.raises(WriterClosed):
        await writer.accept("s", "late", "json", "{}")


def test_max_batch_must_be_positive(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        InboxWriter(async_sessionmaker(), clock, max_batch=0)


def test_sessions_must_be_bound_to_an_engine(clock: ManualClock) -> None:
    with pytest.raises(TypeError, match="session_factory"):
        InboxWriter(async_sessionmaker(), clock)


async def test_restart_after_stop(db: Database, clock: ManualClock) -> None:
    writer = InboxWriter(db.sessions, clock)
    async with running(writer):
        assert await writer.accept("s", "k1", "json", "{}")
    async with running(writer):
        assert await writer.accept("s", "k2", "json", "{}")
    assert len(await rows(db)) == 2


async def test_sqlite_files_are_written_inline(db: Database) -> None:
    insert = batch_insert_for(db.sessions)
    try:
        expected = SqliteInlineInsert if db.backend == "sqlite" else CoreInsert
        assert type(insert) is expected
    finally:
        await insert.close()


async def test_waits_for_a_transaction_of_the_engine_then_stores(
    db: Database, clock: ManualClock
) -> None:
    async with running(InboxWriter(db.sessions, clock)) as writer:
        async with db.engine.begin() as conn:
            await conn.execute(
                insert(InboxRow).values(
                    source="wecom:a",
                    dedupe_key="held",
                    content_type="xml",
                    payload="<xml/>",
                    received_at=clock.now(),
                    state=InboxState.PENDING,
                    attempts=0,
                )
            )
            accepted = asyncio.create_task(writer.accept("wecom:a", "k1", "xml", "<xml>1</xml>"))
            for _ in range(5):
                await asyncio.sleep(0)
            if db.backend == "sqlite":
                assert not accepted.done()  # the engine holds the write lock
        assert await accepted is True
    assert [row.dedupe_key for row in await rows(db)] == ["held", "k1"]


async def test_processes_writing_the_same_callbacks_never_deadlock(
    postgres_db: Database, clock: ManualClock
) -> None:
    """Two web processes get the same callbacks (retries, a load balancer) in opposite orders:
    their batches insert keys in one order, so they wait for each other at most a statement."""
    second_engine = create_engine(postgres_db.url)
    writers = [
        InboxWriter(postgres_db.sessions, clock),
        InboxWriter(session_factory(second_engine), clock),
    ]
    keys = [f"k{i:04d}" for i in range(400)]
    deadlocks_before = await deadlocks(postgres_db)
    try:
        async with running(writers[0]) as first, running(writers[1]) as second:
            for _ in range(5):
                answers = await asyncio.gather(
                    *(first.accept("wecom:a", k, "xml", f"<xml>{k}</xml>") for k in keys),
                    *(
                        second.accept("wecom:a", k, "xml", f"<xml>{k}</xml>")
                        for k in reversed(keys)
                    ),
                )
                assert answers.count(True) <= len(keys)
                keys = [f"{k}x" for k in keys]
    finally:
        await second_engine.dispose()
    stored = await rows(postgres_db)
    assert len(stored) == 5 * 400
    assert all(w.stats.failed_batches == 0 for w in writers)
    assert await deadlocks(postgres_db) == deadlocks_before
