"""One drain of the sender: claimed rows through a window of attempts to recorded outcomes.

The window is what bounds the damage of a crash. A claimed row waits in :attr:`queue`
(rows whose window closes soon at the front) until a write marks it attempted
(:mod:`.writes`); only then is it handed to a worker that makes the call. At most
``concurrency`` rows are marked (or being marked) and not yet recorded at any moment, so at
most that many customer messages can be ``uncertain`` after a crash; every other claimed row
goes back to ``pending``.

Two kinds of database work run beside the sends, on connections of their own
(:class:`~sop.delivery.link.Link`), so neither waits for the other:

- a *claim* (at most one at a time) when the queue runs below half a batch: rows whose lease
  lapsed are recovered and the next batch is claimed; when woken meanwhile, only rows whose
  window closes soon (a welcome code lives 20 seconds and must not wait behind a backlog);
- a *write* once ``record_every`` sends have finished (or none is left in flight): their
  outcomes are recorded and as many queued rows marked as their slots free, in one round
  trip. ``writes_in_flight`` writes may run at once (each on its own connection; on
  PostgreSQL two, so a slot does not wait for a commit behind another commit); each marks
  only slots that stay free whatever becomes of the others.

On ``stopping`` the drain claims and marks nothing more, records what is in flight, and
gives the rows it still holds back at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sop.delivery.channel import OutboxMessage, SendResult
from sop.delivery.claims import release
from sop.delivery.link import Link
from sop.delivery.outcomes import Finished
from sop.delivery.writes import Written, write_cycle
from store.models import OutboxState

if TYPE_CHECKING:
    from sop.delivery.sender import ClaimResult, PassReport, Sender

log = logging.getLogger("sop.delivery.sender")
T = TypeVar("T")


@dataclass(frozen=True)
class _Write:
    finished: list[Finished]
    to_mark: list[OutboxMessage]
    link: Link
    task: asyncio.Future[Written]


class Pipeline:
    def __init__(
        self,
        sender: Sender,
        engine: AsyncEngine,
        report: PassReport,
        *,
        continuous: bool,
        woken: Callable[[], bool],
        stopping: Callable[[], bool],
    ) -> None:
        self._sender = sender
        self._engine = engine
        self._report = report
        self._continuous = continuous
        self._woken = woken
        self._stopping = stopping
        settings = sender.settings
        self._size = settings.concurrency
        self._record_every = settings.record_every or max(1, settings.concurrency // 2)
        # Claim the next batch while half a batch still waits, so the sends never run dry
        # during the claim's round trips; a batch and the one behind it still fit a lease.
        self._refill_below = max(settings.concurrency, settings.batch_size // 2)
        postgres = engine.dialect.name == "postgresql"
        self._links = settings.writes_in_flight or (2 if postgres else 1)
        self.queue: deque[OutboxMessage] = deque()
        self._leases: set[datetime] = set()  # of this drain's claims
        self._attempted = 0  # marked and committed, outcome not yet recorded
        self._marking = 0  # in a write's marks, not committed yet
        self._recording = 0  # finished and in a write, not committed yet
        self._done: list[tuple[OutboxMessage, SendResult]] = []
        self._go: asyncio.Queue[OutboxMessage] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._workers: list[asyncio.Future[None]] = []
        self._claim: asyncio.Future[ClaimResult] | None = None
        self._writes: list[_Write] = []
        self._more = True

    async def run(self) -> None:
        async with AsyncExitStack() as stack:
            claim_link = await stack.enter_async_context(Link(self._engine, log))
            write_links = [
                await stack.enter_async_context(Link(self._engine, log))
                for _ in range(self._links)
            ]
            try:
                await self._loop(claim_link, write_links)
                if self.queue:
                    await self._release(claim_link)
            finally:
                pending: list[asyncio.Future[Any]] = [w.task for w in self._writes]
                if self._claim is not None:
                    pending.append(self._claim)
                await asyncio.gather(*pending, return_exceptions=True)
                for task in self._workers:
                    task.cancel()
                await asyncio.gather(*self._workers, return_exceptions=True)

    async def _loop(self, claim_link: Link, write_links: list[Link]) -> None:
        while True:
            self._collect()
            stopping = self._stopping()
            if stopping:
                self._more = False
            if self._claim is None and not stopping:
                self._start_claim(claim_link)
            idle = [link for link in write_links if all(w.link is not link for w in self._writes)]
            while idle and self._start_write(idle.pop(), stopping):
                pass
            if self._idle():
                return
            await self._changed.wait()
            self._changed.clear()

    def _idle(self) -> bool:
        busy = self._attempted or self._marking or self._writes or self._claim is not None
        return not busy and (not self.queue or self._stopping()) and not self._more

    # -- claims ---------------------------------------------------------------------------

    def _start_claim(self, link: Link) -> None:
        regular = self._more and len(self.queue) < self._refill_below
        if not regular and not self._woken():
            return
        sender = self._sender
        now = sender.clock_now()

        async def claiming(connection: AsyncConnection) -> ClaimResult:
            return await sender.claim_in(connection, now, regular=regular)

        self._claim = self._track(link.transaction(claiming, what="sender (claim)"))

    def _claimed(self, got: ClaimResult) -> None:
        self._sender.claim_committed()
        got.add_to(self._report)
        claimed = got.claimed
        self._leases.add(got.lease_until)
        self.queue.extendleft(reversed(claimed.urgent))
        self.queue.extend(claimed.regular)
        if got.recovered.settle_at is not None:
            self._sender.settle_wanted(got.recovered.settle_at)
        if got.regular:
            self._more = got.full and self._continuous

    # -- writes ---------------------------------------------------------------------------

    def _start_write(self, link: Link, stopping: bool) -> bool:
        """Start a write on ``link`` if one is worth a round trip now; whether it was."""
        in_use = self._attempted + self._marking
        sending = self._attempted - self._recording - len(self._done)
        done = len(self._done)
        free = 0 if stopping else self._size - in_use
        outcomes = done >= self._record_every or (done > 0 and sending == 0)
        marks = bool(self.queue) and free > 0 and free >= min(self._record_every, len(self.queue))
        if not outcomes and not marks:
            return False
        sender = self._sender
        now = sender.clock_now()
        finished = sender.decide_all(self._done, now) if outcomes else []
        if outcomes:
            self._done = []
        room = 0 if stopping else free + len(finished)
        to_mark = [self.queue.popleft() for _ in range(min(room, len(self.queue)))]
        if not finished and not to_mark:
            return False
        self._recording += len(finished)
        self._marking += len(to_mark)
        ids = [m.id for m in to_mark]
        lease_until = now + sender.settings.lease
        me = sender.me

        async def writing(connection: AsyncConnection) -> Written:
            return await write_cycle(
                connection, finished, ids, now=now, lease_until=lease_until, claimed_by=me
            )

        task = self._track(link.atomic(writing, what="sender"))
        self._writes.append(_Write(finished, to_mark, link, task))
        return True

    def _written(self, write: _Write, written: Written) -> None:
        report = self._report
        self._recording -= len(write.finished)
        self._attempted -= len(write.finished)
        for item in write.finished:
            row_id = item.message.id
            if row_id not in written.recorded:
                log.warning("outbox row %s changed hands while it was sent", row_id)
                continue
            report.outcomes[row_id] = item.decision.state
            report.sent += item.decision.state is OutboxState.SENT
            if item.decision.settle_at is not None:
                self._sender.settle_wanted(item.decision.settle_at)
        self._marking -= len(write.to_mark)
        for message in write.to_mark:
            if message.id not in written.marked:
                log.info("outbox row %s was taken over before its attempt", message.id)
                continue
            self._attempted += 1
            self._go.put_nowait(message)
        missing = min(self._size, self._attempted) - len(self._workers)
        self._workers += [asyncio.ensure_future(self._work()) for _ in range(missing)]

    # -- plumbing -------------------------------------------------------------------------

    def _track(self, work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """``work`` as a task that wakes the loop when it is done."""
        task = asyncio.ensure_future(work)
        task.add_done_callback(lambda _: self._changed.set())
        return task

    def _collect(self) -> None:
        """Apply the claims and writes that completed (raising what they raised)."""
        if self._claim is not None and self._claim.done():
            claim, self._claim = self._claim, None
            self._claimed(claim.result())
        for write in [w for w in self._writes if w.task.done()]:
            self._writes.remove(write)
            self._written(write, write.task.result())

    async def _work(self) -> None:
        while True:
            message = await self._go.get()
            result = await self._sender.send_one(message)
            done = self._done  # a new list each time a write takes the finished ones
            done.append((message, result))
            # Wake the loop only when a write is due: every wake costs a loop iteration.
            if len(done) >= self._record_every or len(done) + self._recording >= self._attempted:
                self._changed.set()

    async def _release(self, link: Link) -> None:
        ids = [m.id for m in self.queue]
        leases = sorted(self._leases)

        async def releasing(connection: AsyncConnection) -> None:
            await release(connection, ids, leases)

        await link.transaction(releasing, what="sender (releasing claimed rows)")
        self._report.released += ids
        self.queue.clear()
