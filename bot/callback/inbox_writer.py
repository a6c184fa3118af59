"""Group commit for the inbox: many callbacks, one transaction, then all of them are answered.

One transaction per callback caps ingest at the database's commit rate (ARCHITECTURE "Costs
measured"). The writer keeps one task that writes whatever has queued up: the first callback
goes out at once, those that arrive while a transaction is running are written together in the
next one (at most ``max_batch`` rows, ``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING``), and
only after the commit does each waiting request learn whether its row was new and answer the
platform. A failed transaction fails just its requests (the platform retries them); the writer
goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.callback.inbox_insert import BatchInsert, batch_insert_for
from sop.clock import Clock

log = logging.getLogger(__name__)


class InboxWriteError(Exception):
    """The callback could not be stored; answer 500 so the platform retries it."""


class WriterClosed(InboxWriteError):
    """The writer is stopped (or stopping) and takes no more callbacks."""


@dataclass
class WriterStats:
    """What the writer has done, for tests, the bench and metrics."""

    batches: int = 0
    failed_batches: int = 0
    rows_inserted: int = 0
    duplicates: int = 0
    largest_batch: int = 0


@dataclass(eq=False)
class _Pending:
    row: dict[str, Any]
    future: asyncio.Future[bool]


class InboxWriter:
    """Stores accepted callbacks in the inbox with group commit."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        max_batch: int = 256,
        on_new_rows: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._sessions = sessions
        self._clock = clock
        self._max_batch = max_batch
        self._on_new_rows = on_new_rows
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._insert: BatchInsert | None = batch_insert_for(sessions)
        self.stats = WriterStats()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("InboxWriter.start() called twice")
        self._closing = False
        if self._insert is None:
            self._insert = batch_insert_for(self._sessions)
        self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def stop(self) -> None:
        """Write everything already accepted, then stop; later ``accept`` calls fail."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        insert, self._insert = self._insert, None
        if insert is not None:
            await insert.close()

    async def accept(
        self,
        source: str,
        dedupe_key: str,
        content_type: str,
        payload: str,
        *,
        lane: int = 0,
        priority: int = 1,
    ) -> bool:
        """Store one callback in ``lane``; True if it is new, False if the inbox already had it.

        Returns after the transaction holding it has committed; raises InboxWriteError if it
        could not be stored.
        """
        if self._closing or self._task is None or self._task.done():
            raise WriterClosed("the inbox writer is not running")
        row = {
            "source": source,
            "dedupe_key": dedupe_key,
            "content_type": content_type,
            "payload": payload,
            "received_at": self._clock.now(),
            "lane": lane,
            "priority": priority,
        }
        pending = _Pending(row, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._wake.set()
        return await pending.future

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                # Let the requests already runnable on the loop join this batch: a commit
                # costs more than a row, and an inline insert leaves them no time to queue up.
                await asyncio.sleep(0)
                self._wake.clear()
                while self._queue:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                    await self._write(batch)
                if self._closing:
                    return
        finally:
            self._fail(self._queue, WriterClosed("the inbox writer stopped"))
            self._queue = []

    async def _write(self, batch: list[_Pending]) -> None:
        first: dict[str, _Pending] = {}
        for item in batch:
            first.setdefault(item.row["dedupe_key"], item)
        # Keys in one order in every process: two batches sharing callbacks (a platform retry
        # sent to another process) wait for each other, never deadlock.
        rows = [first[key].row for key in sorted(first)]
        try:
            assert self._insert is not None
            inserted = await self._insert(rows)
        except asyncio.CancelledError:
            self._fail(batch, WriterClosed("the inbox writer was cancelled"))
            raise
        except Exception as exc:
            self.stats.failed_batches += 1
            log.error("inbox write of %d callbacks failed: %r", len(batch), exc)
            self._fail(batch, InboxWriteError(f"inbox write failed: {type(exc).__name__}"))
            return
        self.stats.batches += 1
        self.stats.rows_inserted += len(inserted)
        self.stats.duplicates += len(batch) - len(inserted)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for item in batch:
            key = item.row["dedupe_key"]
            if not item.future.done():
                item.future.set_result(first[key] is item and key in inserted)
        if inserted and self._on_new_rows is not None:
            try:
                self._on_new_rows()
            except Exception:
                log.exception("on_new_rows callback failed")

    @staticmethod
    def _fail(items: list[_Pending], error: InboxWriteError) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)
