"""One batch of inbox rows in one transaction, the leanest way each database allows.

The group-commit writer has a single hot statement: ``INSERT ... ON CONFLICT (dedupe_key) DO
NOTHING RETURNING dedupe_key`` for a batch of rows. Through SQLAlchemy's async engine on SQLite,
aiosqlite hops to its thread for every step of the transaction (begin, cursor, execute, fetch,
close, commit, pool reset: about nine hops a batch), and on the server's one core each hop is a
thread switch that costs more than the insert. So for a SQLite file the engine opens on the
event loop (:mod:`store.sqlite_inline`, the default) the batch runs inline on its own
``sqlite3`` connection under the engine's write gate: no hop at all. A SQLite file opened
otherwise goes to one dedicated thread with its own connection, set up like ``store.db``'s
(WAL, busy timeout, ``BEGIN IMMEDIATE``): one hop a batch. Other databases (PostgreSQL through
asyncpg, no threads) use SQLAlchemy Core on the engine's pool.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from store.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    configure_sqlite_connection,
    inline_sqlite,
    sqlite_path,
)
from store.models import InboxRow, InboxState
from store.notify import INBOX, notify
from store.sqlite_inline import INLINE_BUSY_TIMEOUT_MS, InlineConnection, InlineCreator
from store.transient import Backoff, retry_transient

log = logging.getLogger(__name__)
_TABLE = cast(Table, InboxRow.__table__)
#: The platform waits 5 s for an answer: retry within about a second, then answer 500 (it
#: sends the callback again).
_WRITE_BACKOFF = Backoff(attempts=5, first=0.02, most=0.5)
_COLUMNS = (
    "source",
    "dedupe_key",
    "content_type",
    "payload",
    "received_at",
    "lane",
    "priority",
    "state",
    "attempts",
)
_ROWS_PER_STATEMENT = 100  # 900 parameters: under SQLite's oldest limit of 999


class BatchInsert(Protocol):
    async def __call__(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert ``rows`` in one transaction; return the dedupe keys that were new."""
        ...

    async def close(self) -> None: ...


def batch_insert_for(sessions: async_sessionmaker[AsyncSession]) -> BatchInsert:
    """The thread-backed insert for a SQLite file, else SQLAlchemy Core on the engine."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError(
            f"the inbox writer needs sessions bound to an AsyncEngine, got {engine!r}; "
            "use store.db.session_factory(engine)"
        )
    if engine.dialect.name == "sqlite":
        inline = inline_sqlite(engine)
        if inline is not None:
            return SqliteInlineInsert(inline, engine.dialect)
        path = sqlite_path(engine.url)
        if path is not None:
            return SqliteThreadInsert(path, engine.dialect)
    return CoreInsert(engine)


class CoreInsert:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING`` as one statement through SQLAlchemy.

    In autocommit: the statement is its own transaction, one round trip, so its locks are held
    only while it runs. Another process inserting one of the same callbacks (a platform retry
    that went elsewhere) waits for that statement, never for whatever this process's event
    loop does between an INSERT and a COMMIT. A lost connection or a server restart is retried
    (the insert is idempotent: a retry after a commit whose answer was lost finds its rows).
    New rows are announced (``NOTIFY``, :mod:`store.notify`) to processors in other processes.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._statement = (
            insert(_TABLE)
            .on_conflict_do_nothing(index_elements=[_TABLE.c.dedupe_key])
            .returning(_TABLE.c.dedupe_key)
        )

    async def __call__(self, rows: list[dict[str, Any]]) -> set[str]:
        return await retry_transient(
            lambda: self._insert(rows), what="inbox write", log=log, backoff=_WRITE_BACKOFF
        )

    async def _insert(self, rows: list[dict[str, Any]]) -> set[str]:
        async with self._engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await autocommit.execute(self._statement, rows)
            inserted = set(result.scalars().all())
            if inserted:  # committed: wake the processors, wherever they run
                await notify(autocommit, INBOX)
            return inserted

    async def close(self) -> None:
        return None


class _SqliteBatch:
    """The batch's SQL and parameters for a raw ``sqlite3`` connection (no SQLAlchemy)."""

    def __init__(self, dialect: Dialect) -> None:
        received_at = _TABLE.c.received_at.type
        self._stamp = received_at.dialect_impl(dialect).bind_processor(dialect)
        self._pending = InboxState.PENDING.value
        self._sql: dict[int, str] = {}

    def _statement(self, count: int) -> str:
        sql = self._sql.get(count)
        if sql is None:
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * count)
            sql = (
                f"INSERT INTO {_TABLE.name} ({', '.join(_COLUMNS)}) VALUES {values} "
                "ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key"
            )
            self._sql[count] = sql
        return sql

    def insert_rows(self, connection: sqlite3.Connection, rows: list[dict[str, Any]]) -> set[str]:
        """Run the inserts inside the caller's transaction; the dedupe keys that were new."""
        stamp = self._stamp
        pending = self._pending
        inserted: set[str] = set()
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            params: list[Any] = []
            for row in chunk:
                received = row["received_at"] if stamp is None else stamp(row["received_at"])
                params += (
                    row["source"],
                    row["dedupe_key"],
                    row["content_type"],
                    row["payload"],
                    received,
                    row.get("lane", 0),
                    row.get("priority", 1),
                    pending,
                    0,
                )
            cursor = connection.execute(self._statement(len(chunk)), params)
            inserted.update(key for (key,) in cursor.fetchall())
        return inserted


class SqliteInlineInsert(_SqliteBatch):
    """The batch on the event loop, on its own ``sqlite3`` connection: no thread at all.

    For an engine that runs SQLite on the loop (:mod:`store.sqlite_inline`): the transaction
    takes that engine's write gate, so it never waits on the loop for the processor's
    connection (nor the processor for it), and locks held by other processes are met with the
    short inline busy timeout and an asynchronous retry of ``BEGIN``. A batch of a few dozen
    rows is tens of microseconds, less than one hand-off to a thread.
    """

    def __init__(self, inline: InlineCreator, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._inline = inline
        self._connection: InlineConnection | None = None

    async def __call__(self, rows: list[dict[str, Any]]) -> set[str]:
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        await connection.begin("BEGIN IMMEDIATE")
        try:
            inserted = self.insert_rows(connection.raw, rows)
            await connection.commit()
        except BaseException:
            try:
                if connection.in_transaction:
                    await connection.rollback()
            finally:
                self._disconnect()  # the next batch starts from a fresh connection
            raise
        return inserted

    async def close(self) -> None:
        self._disconnect()

    def _connect(self) -> InlineConnection:
        raw = sqlite3.connect(self._inline.path, isolation_level=None)
        configure_sqlite_connection(raw)
        raw.execute(f"PRAGMA busy_timeout={INLINE_BUSY_TIMEOUT_MS}")
        return InlineConnection(raw, self._inline.gate, self._inline.busy_timeout_ms)

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.stop()


class SqliteThreadInsert(_SqliteBatch):
    """The batch in a dedicated thread on its own ``sqlite3`` connection: one hop a batch.

    For a SQLite file the engine does not open inline (a custom creator).
    """

    def __init__(self, path: Path, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-sqlite")
        self._connection: sqlite3.Connection | None = None

    async def __call__(self, rows: list[dict[str, Any]]) -> set[str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._insert, rows)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._disconnect)
        self._executor.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        configure_sqlite_connection(connection)
        return connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _insert(self, rows: list[dict[str, Any]]) -> set[str]:
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            inserted = self.insert_rows(connection, rows)
            connection.execute("COMMIT")
        except BaseException:
            try:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            finally:
                self._disconnect()  # the next batch starts from a fresh connection
            raise
        return inserted
