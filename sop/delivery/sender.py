"""The sender: takes due outbox rows, sends them through their channels, records what happened.

One pass (:meth:`Sender.run_once`), top to bottom:

1. in one transaction: rows left ``sending`` by a crashed sender are recovered (staff nudges
   sent again, customer messages marked ``uncertain``); due rows are claimed; rows whose
   window has closed are marked ``expired``; rows over a rate limit get a later ``due_at``;
   the rest become ``sending`` with a lease and one more attempt. Commit.
2. the claimed rows are sent concurrently, at most ``concurrency`` at a time;
3. outcomes are written as they arrive, several per transaction (group commit), so a crash
   loses at most the outcomes of the sends in flight: those rows are what step 1 recovers.

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
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.delivery.channel import Channel, OutboxMessage, Outcome, SendResult
from sop.delivery.claims import claim_due, recover_lapsed, to_message
from sop.delivery.outcomes import decide, record
from sop.delivery.ratelimit import RateLimiter, RateLimits
from sop.delivery.retry import RetryPolicy
from store.models import OutboxState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SenderSettings:
    batch_size: int = 100
    concurrency: int = 16
    #: How long a claimed row stays ours; must outlast a batch's sends (timeouts included).
    lease: timedelta = timedelta(minutes=5)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: RateLimits = field(default_factory=RateLimits)
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
        self._limiter = RateLimiter(self.settings.limits)
        self._rng = rng or random.Random()
        self._resendable = {n for n, c in self._channels.items() if not c.customer_facing}

    async def run_forever(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Pass after pass until ``stopping`` is set; idle waits end early on ``wake``."""
        while not stopping.is_set():
            try:
                report = await self.run_once()
            except Exception:
                log.exception("sender pass failed; trying again shortly")
                report = PassReport()
            if report.claimed >= self.settings.batch_size:
                continue
            wake.clear()
            waiter = asyncio.ensure_future(wake.wait())
            stopper = asyncio.ensure_future(stopping.wait())
            try:
                await asyncio.wait(
                    {waiter, stopper},
                    timeout=self.settings.idle_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiter.cancel()
                stopper.cancel()

    async def run_once(self) -> PassReport:
        report = PassReport()
        messages = await self._claim(report)
        if messages:
            await self._send_all(messages, report)
        return report

    async def _claim(self, report: PassReport) -> list[OutboxMessage]:
        now = self._clock.now()
        lease_until = now + self.settings.lease
        claimed: list[OutboxMessage] = []
        async with self._sessions.begin() as session:
            uncertain, again = await recover_lapsed(session, now, self._resendable)
            report.recovered_uncertain, report.recovered_resent = uncertain, again
            if uncertain:
                log.warning("outbox rows %s were being sent during a crash: uncertain", uncertain)
            rows = await claim_due(session, now, self._channels, self.settings.batch_size)
            report.claimed = len(rows)
            for row in rows:
                channel = self._channels[row.channel]
                row.updated_at = now
                if row.expires_at is not None and row.expires_at <= now:
                    row.state = OutboxState.EXPIRED
                    row.last_error = f"its window closed at {row.expires_at.isoformat()}"
                    report.expired += 1
                    report.outcomes[row.id] = row.state
                    continue
                later = self._limiter.acquire(channel.rate_keys(to_message(row)), now)
                if later is not None:
                    row.due_at = later
                    report.deferred += 1
                    continue
                row.state = OutboxState.SENDING
                row.lease_until = lease_until
                row.attempts += 1
                claimed.append(to_message(row))
        return claimed

    async def _send_all(self, messages: list[OutboxMessage], report: PassReport) -> None:
        bound = asyncio.Semaphore(self.settings.concurrency)
        done: list[tuple[OutboxMessage, SendResult]] = []
        arrived = asyncio.Event()

        async def send(message: OutboxMessage) -> None:
            async with bound:
                result = await self._send_one(message)
            done.append((message, result))
            arrived.set()

        tasks = [asyncio.ensure_future(send(m)) for m in messages]
        try:
            remaining = len(messages)
            while remaining:
                await arrived.wait()
                arrived.clear()
                chunk = done[:]
                del done[:]
                await self._record(chunk, report)
                remaining -= len(chunk)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

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
        async with self._sessions.begin() as session:
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
                written = await record(
                    session,
                    message,
                    decision,
                    now=now,
                    summary=channel.summary(message),
                    customer_facing=channel.customer_facing,
                )
                if not written:
                    log.warning("outbox row %s changed hands while it was sent", message.id)
                    continue
                report.outcomes[message.id] = decision.state
                report.sent += decision.state is OutboxState.SENT
