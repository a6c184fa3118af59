"""Engine and session factory for the two supported databases.

SQLite is the embedded default: WAL mode, a busy timeout, foreign keys on, and
``BEGIN IMMEDIATE`` so a writer takes the lock up front instead of failing half way
(pysqlite's own transaction handling is switched off, which also makes SAVEPOINT work).
SQLite files are opened through :mod:`store.sqlite_inline`, which runs sqlite3 on the event
loop thread instead of aiosqlite's worker thread (statements are microseconds; the thread
hand-offs were most of the cost); in-memory and URI databases keep aiosqlite.
PostgreSQL goes through asyncpg; a plain ``postgresql://`` URL is accepted and mapped to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from store.sqlite_inline import INLINE_BUSY_TIMEOUT_MS, InlineCreator, inline_creator

SQLITE_BUSY_TIMEOUT_MS = 30_000

_INLINE: WeakKeyDictionary[Engine, InlineCreator] = WeakKeyDictionary()


def normalize_url(url: str | URL) -> URL:
    """Map the URLs people write to the async drivers the toolkit uses."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(
            f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
            "use sqlite:///path/to/file.db or postgresql://user@host/db"
        )
    return parsed


def is_sqlite(url: str | URL) -> bool:
    return normalize_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


def configure_sqlite_connection(dbapi_connection: Any) -> None:
    """The settings every SQLite connection of the toolkit uses, pooled or not.

    Autocommit mode at the driver level: transactions are begun explicitly (``BEGIN
    IMMEDIATE``), which also makes SAVEPOINT work.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _configure_sqlite(engine: AsyncEngine, *, inline: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        configure_sqlite_connection(dbapi_connection)
        if inline:
            # Waits for other connections' locks would stall the event loop: keep them short;
            # store.sqlite_inline retries a busy BEGIN asynchronously up to the usual timeout.
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={INLINE_BUSY_TIMEOUT_MS}")
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str | URL, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url``; creates the SQLite file's folder when needed."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        inline = (
            path is not None
            and not parsed.query
            and "creator" not in kwargs
            and "async_creator" not in kwargs
        )
        creator = None
        if inline:
            creator = inline_creator(str(path), busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)
            kwargs["async_creator"] = creator
        engine = create_async_engine(parsed, echo=echo, **kwargs)
        _configure_sqlite(engine, inline=inline)
        if creator is not None:
            _INLINE[engine.sync_engine] = creator
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(parsed, echo=echo, **kwargs)


def inline_sqlite(engine: AsyncEngine) -> InlineCreator | None:
    """How ``engine`` opens its SQLite file on the loop (path, write gate); None if it does not.

    Another writer on the same loop (the callback inbox writer) takes the same gate.
    """
    return _INLINE.get(engine.sync_engine)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
