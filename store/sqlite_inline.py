"""An aiosqlite look-alike running sqlite3 on the event-loop thread, for SQLAlchemy's async engine.

Why: aiosqlite runs every call on a per-connection worker thread, and SQLAlchemy awaits
several of those calls per statement, so each statement pays a few thread hand-offs
(~100-200 µs each) for work SQLite itself finishes in microseconds on a local file. The
inbox processor issues ~15 statements per row, so the hand-offs dominated its cost.
Here the coroutine methods call sqlite3 directly and complete without suspending; the
``sqlite+aiosqlite`` dialect is kept and fed these objects through
``create_async_engine(url, async_creator=...)`` (see :func:`store.db.create_engine`).
The attributes the dialect's adapter touches are the ones implemented below
(SQLAlchemy 2.1 ``dialects/sqlite/aiosqlite.py`` and ``connectors/asyncio.py``).

The trade-off: while a statement runs, the loop does not. That is fine for microsecond
statements, but a statement that waits for a lock blocks the loop. Two measures keep
such waits off the loop:

* A cooperative write gate per engine: ``BEGIN`` (the toolkit always says
  ``BEGIN IMMEDIATE``) first awaits an ``asyncio.Lock`` that is held until the
  transaction ends, so two connections of the same engine never make SQLite busy-wait
  for each other on the loop thread (which would deadlock: the holder cannot run).
* Locks held by other connections (the callback inbox writer's own sqlite3 connection
  on its thread, another process) are met with a short ``busy_timeout``
  (:data:`INLINE_BUSY_TIMEOUT_MS`, the longest the loop can stall per attempt), and a
  busy ``BEGIN`` is retried with asynchronous back-off until the toolkit's usual
  :data:`store.db.SQLITE_BUSY_TIMEOUT_MS` has passed. Inside a ``BEGIN IMMEDIATE``
  transaction in WAL mode statements do not wait for other writers; readers never do.

Both bounds assume other writers keep their transactions short, as the inbox writer does.
And since inline statements never suspend, a statement yields to the loop once the
statements before it have held it for :data:`YIELD_INTERVAL_S`, so a long transaction
(an inbox batch) does not starve the HTTP server sharing the loop. For the same reason the
inline connections leave WAL checkpoints (page copies and a file sync, milliseconds) to a
worker thread (:mod:`store.sqlite_checkpoint`) instead of running them in their commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from store.sqlite_checkpoint import Checkpointer

INLINE_BUSY_TIMEOUT_MS = 50
"""The longest one statement may block the event loop waiting for another connection's lock."""

_BEGIN_RETRY_MAX_SLEEP_S = 0.05

YIELD_INTERVAL_S = 0.005
"""How long a run of inline statements may keep the loop before it lets other tasks in."""


class _Pacer:
    __slots__ = ("last_yield",)

    def __init__(self) -> None:
        self.last_yield = 0.0


_pacer = _Pacer()


async def _share_the_loop() -> None:
    """Yield to the loop when statements have held it for :data:`YIELD_INTERVAL_S`.

    Inline statements never suspend, so a long batch (the inbox processor's) would otherwise
    keep the HTTP server in the same process off the loop until the batch commits.
    """
    now = time.monotonic()
    if now - _pacer.last_yield >= YIELD_INTERVAL_S:
        _pacer.last_yield = now
        await asyncio.sleep(0)


class WriteGate:
    """One engine's cooperative writer lock, remade when the engine moves to another loop,
    and the checkpoints of its file (set by the engine's :class:`InlineCreator`)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self.checkpointer: Checkpointer | None = None

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._lock = asyncio.Lock()
        return self._lock


class _Runner:
    """Stands in for aiosqlite's request queue, which SQLAlchemy uses to set isolation_level."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as error:  # handed to the awaiting caller
            future.set_exception(error)


class InlineCursor:
    """The async cursor interface SQLAlchemy's adapter calls, over a sqlite3 cursor."""

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection
        self._cursor = connection._conn.cursor()

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        if sql[:5].upper() == "BEGIN":
            await self._connection._begin(self._cursor, sql, parameters)
            return self
        await _share_the_loop()
        try:
            if parameters is None:
                self._cursor.execute(sql)
            else:
                self._cursor.execute(sql, parameters)
        finally:
            self._connection._release_if_idle()
        return self

    async def executemany(self, sql: str, seq_of_parameters: Any) -> InlineCursor:
        await _share_the_loop()
        try:
            self._cursor.executemany(sql, seq_of_parameters)
        finally:
            self._connection._release_if_idle()
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    def __aiter__(self) -> InlineCursor:
        return self

    async def __anext__(self) -> Any:
        row = self._cursor.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row


class InlineConnection:
    """The parts of ``aiosqlite.Connection`` SQLAlchemy's aiosqlite adapter uses."""

    def __init__(self, conn: sqlite3.Connection, gate: WriteGate, busy_timeout_ms: int) -> None:
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn  # aiosqlite's "still open" marker
        self._tx = _Runner()
        self._gate = gate
        self._held: asyncio.Lock | None = None
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._checkpointer = gate.checkpointer
        if self._checkpointer is not None:
            conn.execute("PRAGMA wal_autocheckpoint=0")  # on the worker thread instead
            self._checkpointer.opened()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection, for callers that run their statements on it directly."""
        return self._conn

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def begin(self, sql: str = "BEGIN IMMEDIATE") -> None:
        """Take the engine's write gate and begin, as SQLAlchemy's ``BEGIN`` does here.

        For a writer with its own connection (the callback inbox writer) sharing an engine's
        gate: end the transaction with :meth:`commit` or :meth:`rollback`, which release it.
        """
        cursor = self._conn.cursor()
        try:
            await self._begin(cursor, sql, None)
        finally:
            cursor.close()

    async def _begin(self, cursor: sqlite3.Cursor, sql: str, parameters: Any) -> None:
        """Take the engine's gate, then BEGIN; retry asynchronously while others hold the lock."""
        deadline = time.monotonic() + self._busy_timeout_s
        if self._held is None:
            lock = self._gate.lock()
            if lock.locked():
                try:
                    await asyncio.wait_for(lock.acquire(), self._busy_timeout_s)
                except TimeoutError:
                    raise sqlite3.OperationalError("database is locked") from None
            else:
                await lock.acquire()
            self._held = lock
        delay = 0.001
        try:
            while True:
                try:
                    cursor.execute(sql, () if parameters is None else parameters)
                    return
                except sqlite3.OperationalError as error:
                    if error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                        raise
                    if time.monotonic() + delay > deadline:
                        raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BEGIN_RETRY_MAX_SLEEP_S)
        finally:
            self._release_if_idle()

    def _release_if_idle(self) -> None:
        if self._held is not None and not self._conn.in_transaction:
            held, self._held = self._held, None
            held.release()

    async def commit(self) -> None:
        try:
            self._conn.commit()
        finally:
            self._release_if_idle()
        if self._checkpointer is not None:
            self._checkpointer.committed()

    async def rollback(self) -> None:
        try:
            self._conn.rollback()
        finally:
            self._release_if_idle()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        cursor = self.cursor()
        await cursor.execute(sql, parameters)
        return cursor

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close now; safe to call twice and from garbage collection."""
        if self._connection is None:
            return
        self._connection = None
        if self._checkpointer is not None:
            self._checkpointer.closed()
        try:
            self._conn.close()
        finally:
            if self._held is not None:
                held, self._held = self._held, None
                held.release()


class InlineCreator:
    """An ``async_creator`` for ``create_async_engine``: opens ``path`` with sqlite3 inline.

    ``gate`` is the engine's write gate, for other connections of the same process that write
    to the file on the loop (they must take it too, see :meth:`InlineConnection.begin`).
    """

    def __init__(self, path: str, gate: WriteGate, busy_timeout_ms: int) -> None:
        self.path = path
        self.gate = gate
        self.busy_timeout_ms = busy_timeout_ms
        if gate.checkpointer is None:
            gate.checkpointer = Checkpointer(path)

    async def __call__(self) -> InlineConnection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        return InlineConnection(conn, self.gate, self.busy_timeout_ms)


def inline_creator(
    path: str, *, gate: WriteGate | None = None, busy_timeout_ms: int
) -> InlineCreator:
    """An ``async_creator`` for ``create_async_engine``: opens ``path`` with sqlite3 inline."""
    return InlineCreator(path, gate if gate is not None else WriteGate(), busy_timeout_ms)
