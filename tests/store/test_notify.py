"""Wake-ups between processes: a notification reaches a listener on another connection, and
the listener comes back after its connection is killed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy import text

from bot.callback.inbox_insert import CoreInsert
from store.db import create_engine
from store.notify import INBOX, Listener, notify
from tests.support.database import Database


@asynccontextmanager
async def listening(url: str) -> AsyncIterator[tuple[Listener, asyncio.Event]]:
    """A listener on the inbox channel in an engine of its own (another process's)."""
    engine = create_engine(url)
    woken, stopping = asyncio.Event(), asyncio.Event()
    listener = Listener(engine, {INBOX: woken.set})
    task = asyncio.create_task(listener.run_forever(stopping))
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
        yield listener, woken
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)
        await engine.dispose()


async def test_a_notification_wakes_a_listener_elsewhere(postgres_db: Database) -> None:
    async with listening(postgres_db.url) as (_listener, woken):
        assert not woken.is_set()
        async with postgres_db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await notify(autocommit, INBOX)
        await asyncio.wait_for(woken.wait(), 10)


async def test_new_inbox_rows_are_announced_and_duplicates_are_not(
    postgres_db: Database,
) -> None:
    insert = CoreInsert(postgres_db.engine)
    row = {
        "source": "wecom:a",
        "dedupe_key": "k1",
        "content_type": "xml",
        "payload": "<xml/>",
        "received_at": datetime.now(UTC),
    }
    async with listening(postgres_db.url) as (_listener, woken):
        assert await insert([row]) == {"k1"}
        await asyncio.wait_for(woken.wait(), 10)
        woken.clear()
        assert await insert([row]) == set()  # a platform retry: nothing new, no wake-up
        await asyncio.sleep(0.3)
        assert not woken.is_set()


async def test_a_listener_whose_connection_is_killed_listens_again(
    postgres_db: Database,
) -> None:
    async with listening(postgres_db.url) as (listener, woken):
        async with postgres_db.engine.connect() as admin:
            await admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND query LIKE 'LISTEN%'"
                )
            )
        await asyncio.wait_for(woken.wait(), 10)  # told to look: it may have missed one
        woken.clear()
        for _ in range(100):
            await asyncio.sleep(0.1)
            if listener.listening.is_set():
                break
        async with postgres_db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await notify(autocommit, INBOX)
        await asyncio.wait_for(woken.wait(), 10)
