"""WAL checkpoints of a SQLite file run on the event loop, moved to a worker thread.

Why: SQLite copies the write-ahead log back into the database file (a checkpoint) in the
commit that grows the log past ``wal_autocheckpoint`` pages, and a checkpoint writes pages
and syncs the file: milliseconds, which on the loop thread stall every callback being
answered and take the processor's share of the loop. So the connections that run on the loop
(:mod:`store.sqlite_inline`) turn automatic checkpoints off, and every :data:`EVERY` commits
of theirs start one ``PASSIVE`` checkpoint on a thread of its own connection (it never waits
for, nor blocks, a writer; sqlite3 lets go of the GIL meanwhile), one at a time. When the last
of those connections closes, the thread's connection closes too; SQLite checkpoints what is
left when the last connection to the file closes, as it always does.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

#: Commits between two checkpoints (a commit of the processor or the inbox writer adds a few
#: dozen pages to the log; SQLite's own default is a checkpoint every 1,000 pages).
EVERY = 64


class _Worker:
    """A thread and its own connection to the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self.conn: sqlite3.Connection | None = None  # opened and used on the thread only

    def checkpoint(self) -> None:
        if self.conn is None:
            self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def retire(self) -> None:
        self.executor.submit(self._close)
        self.executor.shutdown(wait=False)

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Checkpointer:
    """The checkpoints of one database file, for the connections that run on the loop."""

    def __init__(self, path: str, every: int = EVERY) -> None:
        self.path = path
        self.every = every
        self.done = 0  # checkpoints run, for tests and stats
        self._commits = 0
        self._open = 0
        self._running: asyncio.Future[None] | None = None
        self._worker: _Worker | None = None

    def opened(self) -> None:
        self._open += 1

    def closed(self) -> None:
        self._open -= 1
        if self._open <= 0 and self._worker is not None:
            worker, self._worker = self._worker, None
            worker.retire()

    def committed(self) -> None:
        """After a commit on the loop: start a checkpoint every :attr:`every` commits."""
        self._commits += 1
        if self._commits >= self.every and self._running is None:
            self._commits = 0
            self._start()

    async def run(self) -> None:
        """Checkpoint now and wait for it (after one already running)."""
        while self._running is not None:
            await asyncio.shield(self._running)
        self._start()
        assert self._running is not None
        await asyncio.shield(self._running)

    def _start(self) -> None:
        if self._worker is None:
            self._worker = _Worker(self.path)
        worker = self._worker
        running = asyncio.get_running_loop().run_in_executor(worker.executor, worker.checkpoint)
        running.add_done_callback(self._finished)
        self._running = running

    def _finished(self, running: asyncio.Future[None]) -> None:
        self._running = None
        if running.cancelled():
            return
        if running.exception() is not None:
            log.warning("WAL checkpoint of %s failed: %r", self.path, running.exception())
        else:
            self.done += 1
