"""Waiting for the inbox to drain: when every accepted callback has been processed.

The bench polls from its own process on a connection of its own, with a plain read (no
SQLite write lock, nothing the server waits for).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from store.db import normalize_url, sqlite_path

_COUNTS = "SELECT count(*), count(*) FILTER (WHERE state = 'pending') FROM inbox"


class InboxCounter:
    """Counts inbox rows on one connection of its own (a plain read: no SQLite write lock)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._sqlite: sqlite3.Connection | None = None
        self._postgres: Any = None

    async def __aenter__(self) -> InboxCounter:
        path = sqlite_path(self._url)
        if path is not None:
            self._sqlite = sqlite3.connect(path, isolation_level=None)
        else:
            import asyncpg

            url = normalize_url(self._url).set(drivername="postgresql")
            self._postgres = await asyncpg.connect(url.render_as_string(hide_password=False))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._postgres is not None:
            await self._postgres.close()

    async def counts(self) -> tuple[int, int]:
        """(all rows, pending rows)."""
        if self._sqlite is not None:
            total, pending = self._sqlite.execute(_COUNTS).fetchone()
        else:
            total, pending = await self._postgres.fetchrow(_COUNTS)
        return int(total), int(pending)


async def inbox_counts(url: str) -> tuple[int, int]:
    async with InboxCounter(url) as counter:
        return await counter.counts()


async def wait_drained(url: str, patience: float = 600.0) -> tuple[float, int]:
    """Poll until no inbox row is pending (every answered callback is in: an answer follows
    its commit); returns when (``time.perf_counter``) and the backlog at the first poll."""
    deadline = time.perf_counter() + patience
    first_pending: int | None = None
    async with InboxCounter(url) as counter:
        while True:
            _, pending = await counter.counts()
            first_pending = pending if first_pending is None else first_pending
            if pending == 0:
                return time.perf_counter(), first_pending
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{pending} inbox rows still pending after {patience:.0f} s")
            await asyncio.sleep(0.05)
