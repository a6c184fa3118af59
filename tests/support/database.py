"""Real databases for tests: a SQLite file per test, and a PostgreSQL database per test session.

PostgreSQL tests skip with the reason when no server answers, unless ``SCRM_REQUIRE_POSTGRES``
is set (CI sets it), in which case they fail: CI always tests both backends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import Base

POSTGRES_ADMIN_URL = os.environ.get(
    "SCRM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("SCRM_REQUIRE_POSTGRES", "") not in ("", "0", "false")


@dataclass
class Database:
    """One test's database: its URL (for subprocesses), an engine and a session factory."""

    backend: str
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def make_sqlite_template(folder: Path) -> Path:
    path = folder / "template.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    return path


def sqlite_copy(template: Path, folder: Path) -> str:
    target = folder / "scrm.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


async def _postgres_admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class PostgresServer:
    url: str | None
    reason: str


def postgres_database() -> Iterator[PostgresServer]:
    """Create a migrated database for this test session, yield it, drop it afterwards."""
    name = f"scrm_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        yield PostgresServer(None, f"PostgreSQL at {POSTGRES_ADMIN_URL} unusable: {exc!r}")
        return
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    asyncio.run(_migrate(url))
    try:
        yield PostgresServer(url, "")
    finally:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def truncate_all(engine: AsyncEngine) -> None:
    """Empty every table and restart every id sequence, for the next test.

    TRUNCATE costs about 15 ms a table however empty it is, so only the tables that hold
    rows are truncated (one query finds them) and the used sequences are reset in one
    statement: a test that touches two tables pays for two.
    """
    names = [t.name for t in Base.metadata.sorted_tables]
    probe = " UNION ALL ".join(
        f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM \"{name}\")" for name in names
    )
    async with engine.begin() as conn:
        filled = [row[0] for row in await conn.execute(text(probe))]
        if filled:
            tables = ", ".join(f'"{name}"' for name in filled)
            await conn.execute(text(f"TRUNCATE {tables} CASCADE"))
        await conn.execute(
            text(
                "SELECT setval(format('%I.%I', schemaname, sequencename), 1, false)"
                " FROM pg_sequences WHERE last_value IS NOT NULL"
            )
        )


async def open_database(backend: str, url: str) -> Database:
    engine = create_engine(url)
    if backend == "postgres":
        await truncate_all(engine)
    return Database(backend, url, engine, session_factory(engine))


async def deadlocks(db: Database) -> int:
    """Deadlocks PostgreSQL has detected in ``db``'s database so far (its statistics, flushed
    first), for tests that must cause none."""
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        count = await conn.execute(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        )
        return int(count.scalar_one())
