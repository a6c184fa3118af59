"""What every benchmark needs: an event loop runner and a scratch PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from bot.console.context import run

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

__all__ = ["POSTGRES_ADMIN", "postgres_admin", "postgres_available", "run", "scratch_postgres"]


async def postgres_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_available() -> str | None:
    """None when PostgreSQL answers at 127.0.0.1:5432, else why not."""
    try:
        run(postgres_admin("SELECT 1"))
    except Exception as exc:  # asyncpg raises its own errors besides OSError
        return f"{type(exc).__name__}: {exc}"
    return None


@contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A new empty database for one bench run, dropped afterwards; yields its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    run(postgres_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        run(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
