"""The sender's own database connection: kept for a whole drain, transactions retried.

The sender runs a short transaction every few sends. Through a session each one also paid for
a pool checkout, PostgreSQL's pre-ping round trip and a session object: about 500 µs of CPU
on PostgreSQL, more than the statements themselves. A :class:`Link` checks one connection out
for the drain and runs each transaction on it.

The write that records outcomes and marks attempts is atomic by itself (one statement on
PostgreSQL, its own transaction in one greenlet hop on SQLite): :meth:`Link.atomic` runs it
in autocommit on PostgreSQL, one round trip instead of three (``BEGIN``, the statement,
``COMMIT``).

A transaction that fails for a reason a retry cures (deadlock, serialization failure, lost
connection, PostgreSQL restart, SQLite busy: :mod:`store.transient`) is run again as a
whole, on a fresh connection, so a database hiccup never turns a row failed or uncertain by
itself. The work function must therefore derive everything from its arguments and leave the
caller's state alone until it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from store.transient import Backoff, is_transient, retry_transient

T = TypeVar("T")

#: The sender keeps at it for about three minutes before a pass gives up: less than a lease,
#: so rows whose outcome it holds are written before another sender could take them over.
SENDER_BACKOFF = Backoff(attempts=40, first=0.02, most=5.0)


def engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine a session factory binds to (how the sender finds its database)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError(f"the sender needs sessions bound to an AsyncEngine, got {bind!r}")
    return bind


class Link:
    """``async with Link(engine, log) as link: await link.transaction(work, what=...)``."""

    def __init__(
        self, engine: AsyncEngine, log: logging.Logger, backoff: Backoff = SENDER_BACKOFF
    ) -> None:
        self._engine = engine
        self._log = log
        self._backoff = backoff
        self._connection: AsyncConnection | None = None
        self._autocommit = False

    @property
    def dialect_name(self) -> str:
        return self._engine.dialect.name

    async def __aenter__(self) -> Link:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._drop(broken=False)

    async def transaction(
        self, work: Callable[[AsyncConnection], Awaitable[T]], *, what: str
    ) -> T:
        """``work(connection)`` in one transaction, committed; retried while transient."""

        async def attempt() -> T:
            connection = await self._connect(autocommit=False)
            try:
                async with connection.begin():
                    return await work(connection)
            except Exception as error:
                if is_transient(error):
                    await self._drop(broken=True)
                raise

        return await retry_transient(attempt, what=what, log=self._log, backoff=self._backoff)

    async def atomic(self, work: Callable[[AsyncConnection], Awaitable[T]], *, what: str) -> T:
        """``work(connection)``, atomic by itself: one statement on PostgreSQL (run in
        autocommit), its own transaction elsewhere; retried while transient."""
        postgres = self.dialect_name == "postgresql"

        async def attempt() -> T:
            connection = await self._connect(autocommit=postgres)
            try:
                result = await work(connection)
                if connection.in_transaction():
                    await connection.commit()  # SQLAlchemy's autobegin; nothing is sent
                return result
            except Exception as error:
                if is_transient(error):
                    await self._drop(broken=True)
                else:
                    await connection.rollback()
                raise

        return await retry_transient(attempt, what=what, log=self._log, backoff=self._backoff)

    async def _connect(self, *, autocommit: bool) -> AsyncConnection:
        connection = self._connection
        if connection is None:
            connection = self._connection = await self._engine.connect()
            self._autocommit = False
        if autocommit != self._autocommit:
            level = "AUTOCOMMIT" if autocommit else connection.default_isolation_level
            level = level or "READ COMMITTED"
            await connection.execution_options(isolation_level=level)
            self._autocommit = autocommit
        return connection

    async def _drop(self, *, broken: bool) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with suppress(Exception):  # a broken connection may fail to say goodbye
            if broken:
                await connection.invalidate()
            await connection.close()
