"""Wake-ups between processes through PostgreSQL's LISTEN/NOTIFY.

A web process stores a callback; the worker that processes it may be another process on
another machine. Without a word from the web process the worker finds the row at its next
poll (a second later); a welcome message's code lives 20 seconds, and every such second
counts. So the writer of new rows sends ``NOTIFY <channel>`` after its commit, and each worker
keeps one connection listening, which sets the matching wake event the moment a notification
arrives. Notifications are only a hint: a lost one (a connection that dropped) costs one poll
interval, never a row, because the loops poll anyway. SQLite has no such thing: one process
does the work there, and it wakes itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.transient import describe

log = logging.getLogger(__name__)

#: New inbox rows (the processor's wake).
INBOX = "scrm_inbox"
#: How long to wait before listening again after the connection was lost.
RECONNECT_SECONDS = 1.0

_NOTIFY = text("SELECT pg_notify(:channel, '')")


async def notify(connection: AsyncConnection, channel: str) -> None:
    """``NOTIFY channel`` on ``connection`` (delivered when its transaction commits: in
    autocommit, at once). Nothing on SQLite."""
    if connection.dialect.name == "postgresql":
        await connection.execute(_NOTIFY, {"channel": channel})


class Listener:
    """One connection listening on ``handlers``' channels, calling each handler on a
    notification; listening again after the connection is lost."""

    def __init__(self, engine: AsyncEngine, handlers: Mapping[str, Callable[[], None]]) -> None:
        self._engine = engine
        self._handlers = dict(handlers)
        self.listening = asyncio.Event()

    async def run_forever(
        self,
        stopping: asyncio.Event,
        *,
        on_listening: Callable[[], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Listen until ``stopping`` is set (PostgreSQL only; returns at once on SQLite);
        ``on_listening`` hears of each time it starts listening, ``on_failure`` of each loss."""
        if self._engine.dialect.name != "postgresql":
            return
        while not stopping.is_set():
            try:
                await self._listen_until_lost(stopping, on_listening)
            except Exception as error:
                log.warning("listening for wake-ups failed: %s", describe(error))
                if on_failure is not None:
                    on_failure(error)
            self.listening.clear()
            if not stopping.is_set():
                # Whatever was notified meanwhile is found by the loops' own polls.
                for handler in self._handlers.values():
                    handler()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=RECONNECT_SECONDS)

    async def _listen_until_lost(
        self, stopping: asyncio.Event, on_listening: Callable[[], None] | None
    ) -> None:
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            lost = asyncio.Event()

            def on_notification(_conn: object, _pid: int, channel: str, _payload: str) -> None:
                handler = self._handlers.get(channel)
                if handler is not None:
                    handler()

            driver.add_termination_listener(lambda _conn: lost.set())
            for channel in self._handlers:
                await driver.add_listener(channel, on_notification)
            self.listening.set()
            if on_listening is not None:
                on_listening()
            try:
                waiters = {
                    asyncio.ensure_future(lost.wait()),
                    asyncio.ensure_future(stopping.wait()),
                }
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
            finally:
                if not lost.is_set():
                    for channel in self._handlers:
                        await driver.remove_listener(channel, on_notification)
                else:
                    await connection.invalidate()
