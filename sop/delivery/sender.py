"""The sender: takes due outbox rows, sends them through their channels, records what happened.

A drain (:meth:`Sender.drain`, :mod:`.pipeline`) claims due rows in batches, attempts at most
``concurrency`` of them at a time and records their outcomes as they arrive. Each claim, in
the transaction that records and marks (see :mod:`.pipeline`):

- recovers rows left ``sending`` by a crashed sender: never attempted, back to pending;
  attempted staff nudges, sent again; attempted customer messages, ``uncertain``;
- claims due rows, those whose window closes soon (welcome codes) first; rows whose window
  has closed become ``expired``; staff app messages that would go out in the first seconds
  of a :00 or :30 minute are nudged a few seconds later (:mod:`.rush`); the rest reserve
  their rate budgets, shared with every other sender through the database
  (:mod:`.shared_limits`), and those over a limit get a later ``due_at``; the rows left are
  ``sending`` under a lease, waiting for their attempt.

Uncertain rows of channels that can ask the platform (:class:`~.channel.Settling`) are
settled by :meth:`Sender.settle`, which :meth:`Sender.run_forever` runs beside the drains.

Every µs per row counts here: the sender is CPU-bound in its process (see
``python -m bench.send``), so the per-row path builds each message once, computes summaries
only for timeline entries, asks for rate budgets only when some limit is on, reuses
prebuilt statements and keeps one connection for a drain (:mod:`.link`).

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

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.delivery.channel import Channel, OutboxMessage, Outcome, SendResult, Settling, Verdict
from sop.delivery.claims import Claimed, Recovered, claim_due, recover_lapsed, take, update_each
from sop.delivery.link import Link, engine_of
from sop.delivery.outcomes import Finished, decide, on_timeline
from sop.delivery.pipeline import Pipeline
from sop.delivery.ratelimit import RateLimits
from sop.delivery.retry import RetryPolicy
from sop.delivery.rush import RushAvoidance
from sop.delivery.settle import Settler
from sop.delivery.shared_limits import SharedRateLimiter
from sop.loops import run_until_stopped
from store.liveness import Liveness
from store.models import OutboxState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SenderSettings:
    batch_size: int = 100
    #: Rows attempted and not yet recorded at most: the sends in flight, and the most
    #: customer messages a crash can leave ``uncertain``.
    concurrency: int = 16
    #: How long a claimed row stays ours; must outlast the sends of a batch and of the one
    #: queued behind it (timeouts included). Renewed for each row when it is attempted.
    lease: timedelta = timedelta(minutes=5)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: RateLimits = field(default_factory=RateLimits)
    #: Off unless given: the composition root turns it on from the configuration (on by
    #: default there), so tests and tools on a clock that sits at 09:00:00 are not nudged.
    rush: RushAvoidance | None = None
    #: Real seconds to sleep when nothing is due and nobody wakes the sender.
    idle_seconds: float = 1.0
    #: Rows whose window closes within this are claimed ahead of any backlog.
    urgent_within: timedelta = timedelta(minutes=1)
    #: Outcomes are written (freeing their slots for new attempts) once this many sends
    #: have finished, or when none is left in flight. None: half the concurrency.
    record_every: int | None = None
    #: Writes that may be in flight at once. None: 2 on PostgreSQL (a commit waits on the
    #: server: the next write need not wait behind it), 1 on SQLite (writes run inline).
    writes_in_flight: int | None = None
    #: Real seconds between looks for uncertain rows to settle when nobody asks sooner.
    settle_every: float = 10.0


@dataclass
class PassReport:
    """What one pass did, for logs and tests."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    expired: int = 0
    recovered_uncertain: list[int] = field(default_factory=list)
    recovered_resent: list[int] = field(default_factory=list)
    #: Rows a stopped sender had claimed but never attempted: pending again.
    recovered_released: list[int] = field(default_factory=list)
    #: Rows this pass had claimed and gave back unattempted because it was stopping.
    released: list[int] = field(default_factory=list)
    outcomes: dict[int, OutboxState] = field(default_factory=dict)


@dataclass
class ClaimResult:
    """One claim, made inside a pipeline cycle; added to the pass's report once committed."""

    claimed: Claimed
    lease_until: datetime
    recovered: Recovered
    regular: bool
    #: The claim took a whole batch: more rows may be due.
    full: bool
    found: int
    deferred: int
    expired: dict[int, OutboxState]

    def add_to(self, report: PassReport) -> None:
        report.claimed += self.found
        report.deferred += self.deferred
        report.expired += len(self.expired)
        report.outcomes.update(self.expired)
        report.recovered_uncertain += self.recovered.uncertain
        report.recovered_resent += self.recovered.resent
        report.recovered_released += self.recovered.released
        if self.recovered.uncertain:
            log.warning(
                "outbox rows %s were being sent during a crash: uncertain",
                self.recovered.uncertain,
            )


class Sender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        channels: Iterable[Channel],
        clock: Clock,
        settings: SenderSettings | None = None,
        *,
        rng: random.Random | None = None,
        process: Liveness | None = None,
    ) -> None:
        """``process``: this process's heartbeat (:mod:`store.liveness`); with it, claimed
        rows name the process, and the rows of a process that stopped beating are taken back
        within seconds instead of when their lease lapses."""
        self._engine = engine_of(sessions)
        self._process = process
        self._channels = {channel.name: channel for channel in channels}
        self._clock = clock
        self.settings = settings or SenderSettings()
        self._limiter = SharedRateLimiter(self.settings.limits)
        self._rng = rng or random.Random()
        self._resendable = {n for n, c in self._channels.items() if not c.customer_facing}
        self._settle_after = {
            n: c.settle_after for n, c in self._channels.items() if isinstance(c, Settling)
        }
        self._settler = Settler(self._channels, clock)
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._settle_wake = asyncio.Event()
        self._reclaim_own = False

    @property
    def me(self) -> int | None:
        """This process's token (None without a heartbeat, or before it registered)."""
        return self._process.token or None if self._process is not None else None

    async def run_forever(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Drain after drain until ``stopping`` is set; idle waits end early on ``wake``.
        Uncertain rows are settled beside, when a drain asks for it or every
        ``settle_every`` seconds."""
        self._wake, self._stopping = wake, stopping
        every = self.settings.idle_seconds
        drains = run_until_stopped(
            self.drain, wake, stopping, idle_seconds=every, log=log, what="sender"
        )
        loops = [drains]
        if self._settler.active:
            loops.append(
                run_until_stopped(
                    self.settle,
                    self._settle_wake,
                    stopping,
                    idle_seconds=self.settings.settle_every,
                    log=log,
                    what="settler",
                )
            )
        try:
            await asyncio.gather(*loops)
        finally:
            self._wake = self._stopping = None  # a later run_once (a test, a tool) may send

    async def run_once(self) -> PassReport:
        """One claim of at most ``batch_size`` rows, sent and recorded."""
        return await self._pipeline(continuous=False)

    async def drain(self) -> PassReport:
        """Claim, send and record until a claim comes back short: what the passes did.

        The next batch is claimed while the sends of the last are still in flight, so
        ``concurrency`` sends stay busy from the first row to the last.
        """
        return await self._pipeline(continuous=True)

    async def settle(self) -> dict[int, Verdict]:
        """Settle the uncertain rows that are due: the verdicts recorded, by row id."""
        verdicts: dict[int, Verdict] = {}
        async with Link(self._engine, log) as link:
            while True:
                found = await self._settler.run_once(link)
                verdicts.update(found)
                if len(found) < self._settler.batch_size:
                    return verdicts

    async def _pipeline(self, *, continuous: bool) -> PassReport:
        report = PassReport()
        # No drain of this process runs now: rows it left ``sending`` (a drain that failed
        # half way) are taken back by the first claim, as a dead process's would be.
        self._reclaim_own = True
        pipeline = Pipeline(
            self,
            self._engine,
            report,
            continuous=continuous,
            woken=self._woken,
            stopping=self._is_stopping,
        )
        await pipeline.run()
        return report

    def _woken(self) -> bool:
        """True once after ``wake`` was set: new rows may be waiting (a welcome, maybe)."""
        wake = self._wake
        if wake is None or not wake.is_set():
            return False
        wake.clear()
        return True

    def _is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    # -- what the pipeline asks of the sender ---------------------------------------------

    def clock_now(self) -> datetime:
        return self._clock.now()

    def claim_committed(self) -> None:
        """A claim of this drain committed: from now on its rows are in flight."""
        self._reclaim_own = False

    def settle_wanted(self, when: datetime) -> None:
        """Some row is to be settled at ``when``: wake the settler if that is now."""
        if when <= self._clock.now():
            self._settle_wake.set()

    async def claim_in(
        self, connection: AsyncConnection, now: datetime, *, regular: bool
    ) -> ClaimResult:
        """Recover lapsed rows and claim due ones in the caller's transaction (see the module
        docstring); ``regular`` false: only rows whose window closes soon."""
        settings = self.settings
        limit = settings.batch_size
        recovered = await recover_lapsed(
            connection,
            now,
            self._resendable,
            self._settle_after,
            me=self.me,
            reclaim_own=self._reclaim_own,
        )
        claimed = await claim_due(
            connection,
            now,
            self._channels,
            limit,
            urgent_within=settings.urgent_within,
            regular=regular,
        )
        expired: dict[int, OutboxState] = {}
        expiring: list[dict[str, Any]] = []
        deferred: list[dict[str, Any]] = []
        candidates: list[OutboxMessage] = []
        for row in claimed.all:
            if row.expires_at is not None and row.expires_at <= now:
                expiring.append(
                    {
                        "b_id": row.id,
                        "state": OutboxState.EXPIRED,
                        "last_error": f"its window closed at {row.expires_at.isoformat()}",
                        "updated_at": now,
                    }
                )
                expired[row.id] = OutboxState.EXPIRED
                continue
            nudged = self._nudge(row, now)
            if nudged is not None:
                deferred.append({"b_id": row.id, "due_at": nudged, "updated_at": now})
                continue
            candidates.append(row)
        sending = candidates
        if self._limiter.limits_anything and candidates:
            wanted = [self._channels[row.channel].rate_keys(row) for row in candidates]
            answers = await self._limiter.reserve(connection, wanted, now)
            sending = []
            for row, later in zip(candidates, answers, strict=True):
                if later is None:
                    sending.append(row)
                else:
                    deferred.append({"b_id": row.id, "due_at": later, "updated_at": now})
        await update_each(connection, expiring)
        await update_each(connection, deferred)
        lease_until = now + settings.lease
        await take(
            connection,
            [m.id for m in sending],
            now=now,
            lease_until=lease_until,
            claimed_by=self.me,
        )
        kept = {m.id for m in sending}
        ours = Claimed(
            [m for m in claimed.urgent if m.id in kept],
            [m for m in claimed.regular if m.id in kept],
        )
        return ClaimResult(
            claimed=ours,
            lease_until=lease_until,
            recovered=recovered,
            regular=regular,
            full=len(claimed.all) >= limit,
            found=len(claimed.all),
            deferred=len(deferred),
            expired=expired,
        )

    def _nudge(self, row: OutboxMessage, now: datetime) -> datetime | None:
        rush = self.settings.rush
        return None if rush is None else rush.nudge(row.channel, now, self._rng)

    async def send_one(self, message: OutboxMessage) -> SendResult:
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

    def decide_all(
        self, chunk: list[tuple[OutboxMessage, SendResult]], now: datetime
    ) -> list[Finished]:
        """Each finished send's decision, with a summary only where a timeline entry needs it."""
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
                settle_after=self._settle_after.get(message.channel),
            )
            summary = channel.summary(message) if on_timeline(message, decision) else ""
            finished.append(Finished(message, decision, summary, channel.customer_facing))
        return finished
