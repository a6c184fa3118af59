"""The sender: takes due outbox rows, sends them through their channels, records what happened.

One pass (:meth:`Sender.run_once`), top to bottom:

1. in one transaction: rows left ``sending`` by a crashed sender are recovered (staff nudges
   sent again, customer messages marked ``uncertain``); due rows are claimed; rows whose
   window has closed are marked ``expired``; staff app messages that would go out in the
   first seconds of a :00 or :30 minute are nudged a few seconds later (:mod:`.rush`); the
   rest reserve their rate budgets, shared with every other sender through the database
   (:mod:`.shared_limits`), and those over a limit get a later ``due_at``; the rows left
   become ``sending`` with a lease and one more attempt. Commit.
2. the claimed rows are sent concurrently, at most ``concurrency`` at a time; :meth:`Sender.drain`
   (what ``run_forever`` runs) claims the next batch while these sends are in flight, once
   fewer than half a batch wait;
3. outcomes are written as they arrive, several per transaction (group commit), so a crash
   loses at most the outcomes of the sends in flight: those rows are what step 1 recovers.
   When ``stopping`` is set, no more rows are claimed, claimed rows not yet handed to a
   channel are given back (pending, the attempt not counted), and the sends in flight finish
   and are recorded.
   Each write is fenced (the row is still ``sending`` at our attempt); where the driver
   counts each row an executemany changed (SQLite) that count proves a group was all ours,
   and only a group that was not is rolled back and written again after a fenced read.

Every µs per row counts here: the sender is CPU-bound in its process (see
``python -m bench.send``), so the per-row path builds each message once, computes summaries
only for timeline entries, asks for rate budgets only when some limit is on, and reuses
prebuilt statements.

Wiring (for the composition root, ``bot/server.py``): build the channels from the WeCom
clients (``bot.channels``), ``Sender(sessions, channels, clock)``, and run
``sender.run_forever(wake, stopping)`` as a background task; set ``wake`` after a transaction
that enqueued rows (welcome messages have 20 seconds).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.delivery.channel import Channel, OutboxMessage, Outcome, SendResult
from sop.delivery.claims import claim_due, mark_sending, recover_lapsed, release, update_each
from sop.delivery.outcomes import Finished, NotAllOurs, decide, on_timeline, record
from sop.delivery.ratelimit import RateLimits
from sop.delivery.retry import RetryPolicy
from sop.delivery.rush import RushAvoidance
from sop.delivery.shared_limits import SharedRateLimiter
from sop.loops import run_until_stopped
from store.models import OutboxState
from store.transient import retry_transient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SenderSettings:
    batch_size: int = 100
    concurrency: int = 16
    #: How long a claimed row stays ours; must outlast the sends of a batch and of the one
    #: queued behind it (timeouts included).
    lease: timedelta = timedelta(minutes=5)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: RateLimits = field(default_factory=RateLimits)
    #: Off unless given: the composition root turns it on from the configuration (on by
    #: default there), so tests and tools on a clock that sits at 09:00:00 are not nudged.
    rush: RushAvoidance | None = None
    #: Real seconds to sleep when nothing is due and nobody wakes the sender.
    idle_seconds: float = 1.0


@dataclass
class PassReport:
    """What one pass did, for logs and tests."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    expired: int = 0
    recovered_uncertain: list[int] = field(default_factory=list)
    recovered_resent: list[int] = field(default_factory=list)
    outcomes: dict[int, OutboxState] = field(default_factory=dict)


class Sender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channels: Iterable[Channel],
        clock: Clock,
        settings: SenderSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._channels = {channel.name: channel for channel in channels}
        self._clock = clock
        self.settings = settings or SenderSettings()
        self._limiter = SharedRateLimiter(self.settings.limits)
        self._rng = rng or random.Random()
        self._resendable = {n for n, c in self._channels.items() if not c.customer_facing}
        self._stopping = asyncio.Event()
        self._arrived: asyncio.Event | None = None

    async def run_forever(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Drain after drain until ``stopping`` is set; idle waits end early on ``wake``."""
        every = self.settings.idle_seconds
        self._stopping = stopping
        watcher = asyncio.ensure_future(self._interrupt_on(stopping))
        try:
            await run_until_stopped(
                self.drain, wake, stopping, idle_seconds=every, log=log, what="sender"
            )
        finally:
            watcher.cancel()
            self._stopping = asyncio.Event()  # a later run_once (a test, a tool) may send

    async def _interrupt_on(self, stopping: asyncio.Event) -> None:
        """Wake a pipeline waiting for outcomes when ``stopping`` is set, so it gives back
        what it has not started sending without waiting for the sends in flight first."""
        await stopping.wait()
        if self._arrived is not None:
            self._arrived.set()

    async def run_once(self) -> PassReport:
        """One claim of at most ``batch_size`` rows, sent and recorded."""
        return await self._pipeline(continuous=False)

    async def drain(self) -> PassReport:
        """Claim, send and record until a claim comes back short: what the passes did.

        The next batch is claimed while the sends of the last are still in flight, so
        ``concurrency`` sends stay busy from the first row to the last.
        """
        return await self._pipeline(continuous=True)

    async def _pipeline(self, *, continuous: bool) -> PassReport:
        report = PassReport()
        queue: asyncio.Queue[OutboxMessage] = asyncio.Queue()
        done: list[tuple[OutboxMessage, SendResult]] = []
        arrived = self._arrived = asyncio.Event()

        async def worker() -> None:
            while True:
                message = await queue.get()
                done.append((message, await self._send_one(message)))
                arrived.set()

        workers: list[asyncio.Future[None]] = []
        # Claim the next batch while half a batch still waits, so the sends never run dry
        # during the claim's round trips; a batch and the one behind it still fit a lease.
        refill_below = max(self.settings.concurrency, self.settings.batch_size // 2)
        try:
            outstanding, more = 0, True
            while more or outstanding:
                if self._stopping.is_set():
                    more = False
                    unsent = [queue.get_nowait() for _ in range(queue.qsize())]
                    if unsent:
                        await self._release(unsent)
                        outstanding -= len(unsent)
                    if not outstanding:
                        break
                if more and queue.qsize() < refill_below:
                    messages, more = await self._claim_retrying(report)
                    more = more and continuous
                    for message in messages:
                        queue.put_nowait(message)
                    outstanding += len(messages)
                    missing = min(self.settings.concurrency, outstanding) - len(workers)
                    workers += [asyncio.ensure_future(worker()) for _ in range(missing)]
                    continue
                await arrived.wait()
                arrived.clear()
                chunk = done[:]
                del done[:]
                if chunk:
                    await self._record(chunk, report)
                    outstanding -= len(chunk)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return report

    async def _claim(self, report: PassReport) -> tuple[list[OutboxMessage], bool]:
        """Claimed messages to send, and whether the claim took a full batch (more may wait)."""
        now = self._clock.now()
        limit = self.settings.batch_size
        sending: list[OutboxMessage] = []
        expired: list[dict[str, Any]] = []
        deferred: list[dict[str, Any]] = []
        async with self._sessions.begin() as session:
            uncertain, again = await recover_lapsed(session, now, self._resendable)
            report.recovered_uncertain += uncertain
            report.recovered_resent += again
            if uncertain:
                log.warning("outbox rows %s were being sent during a crash: uncertain", uncertain)
            rows = await claim_due(session, now, self._channels, limit)
            report.claimed += len(rows)
            candidates: list[OutboxMessage] = []
            for row in rows:
                if row.expires_at is not None and row.expires_at <= now:
                    expired.append(
                        {
                            "b_id": row.id,
                            "state": OutboxState.EXPIRED,
                            "last_error": f"its window closed at {row.expires_at.isoformat()}",
                            "updated_at": now,
                        }
                    )
                    report.outcomes[row.id] = OutboxState.EXPIRED
                    continue
                nudged = self._nudge(row, now)
                if nudged is not None:
                    deferred.append({"b_id": row.id, "due_at": nudged, "updated_at": now})
                    continue
                candidates.append(row)
            if self._limiter.limits_anything:
                wanted = [self._channels[row.channel].rate_keys(row) for row in candidates]
                answers = await self._limiter.reserve(session, wanted, now)
                for row, later in zip(candidates, answers, strict=True):
                    if later is None:
                        sending.append(row)
                    else:
                        deferred.append({"b_id": row.id, "due_at": later, "updated_at": now})
            else:
                sending = candidates
            await update_each(session, expired)
            await update_each(session, deferred)
            lease_until = now + self.settings.lease
            await mark_sending(session, [m.id for m in sending], now=now, lease_until=lease_until)
        report.expired += len(expired)
        report.deferred += len(deferred)
        return sending, len(rows) >= limit

    async def _claim_retrying(self, report: PassReport) -> tuple[list[OutboxMessage], bool]:
        """:meth:`_claim`, run again on a transient database error (its transaction rolled
        back, so nothing was claimed) rather than failing the pass and the sends in flight."""

        async def attempt() -> tuple[PassReport, list[OutboxMessage], bool]:
            scratch = PassReport()
            messages, more = await self._claim(scratch)
            return scratch, messages, more

        scratch, messages, more = await retry_transient(attempt, what="outbox claim", log=log)
        report.claimed += scratch.claimed
        report.deferred += scratch.deferred
        report.expired += scratch.expired
        report.recovered_uncertain += scratch.recovered_uncertain
        report.recovered_resent += scratch.recovered_resent
        report.outcomes.update(scratch.outcomes)
        return messages, more

    async def _release(self, messages: list[OutboxMessage]) -> None:
        async def attempt() -> None:
            async with self._sessions.begin() as session:
                await release(session, messages, self._clock.now())

        await retry_transient(attempt, what="outbox release", log=log)
        log.info("sender stopping: %d claimed message(s) given back unsent", len(messages))

    def _nudge(self, row: OutboxMessage, now: datetime) -> datetime | None:
        rush = self.settings.rush
        return None if rush is None else rush.nudge(row.channel, now, self._rng)

    async def _send_one(self, message: OutboxMessage) -> SendResult:
        channel = self._channels[message.channel]
        try:
            return await channel.send(message)
        except Exception as exc:  # an adapter bug must not take the batch down
            log.exception("channel %s raised on outbox row %s", channel.name, message.id)
            return SendResult(
                Outcome.TRANSIENT,
                error=f"channel {channel.name} raised {type(exc).__name__}: {exc}",
                maybe_applied=True,
            )

    async def _record(
        self, chunk: list[tuple[OutboxMessage, SendResult]], report: PassReport
    ) -> None:
        now = self._clock.now()
        finished = []
        for message, result in chunk:
            channel = self._channels[message.channel]
            decision = decide(
                message,
                result,
                customer_facing=channel.customer_facing,
                policy=self.settings.retry,
                now=now,
                rng=self._rng,
            )
            # Only a timeline entry shows the summary: most rows never need it.
            summary = channel.summary(message) if on_timeline(message, decision) else ""
            finished.append(Finished(message, decision, summary, channel.customer_facing))

        async def write() -> set[int]:
            try:
                async with self._sessions.begin() as session:
                    return await record(session, finished, now=now, all_or_nothing=True)
            except NotAllOurs:  # rolled back: read which rows are still ours, record those
                async with self._sessions.begin() as session:
                    return await record(session, finished, now=now)

        # A lost outcome would leave the row ``sending`` until its lease lapses (a customer's
        # then uncertain although it was sent): a transient database error is retried.
        written = await retry_transient(write, what="outbox outcomes", log=log)
        for item in finished:
            if item.message.id not in written:
                log.warning("outbox row %s changed hands while it was sent", item.message.id)
                continue
            report.outcomes[item.message.id] = item.decision.state
            report.sent += item.decision.state is OutboxState.SENT
