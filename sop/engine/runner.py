"""The engine loop: claim due agenda rows and run them in one transaction, repeat.

Wiring (for the composition root, ``bot/server.py``)::

    engine = Engine(sessions, lambda: runtime.catalog, renderer, clock, settings.sop,
                    zone_default)
    await engine.run_forever(wake, stopping)   # a background task next to the sender

``run_once`` executes everything due now (what tests and ``preview`` call after moving the
clock); ``run_forever`` does that on every ``wake`` (the scheduler's tick, a new
enrollment) or every ``tick_seconds``. Several engines may run against one PostgreSQL
database: claims are disjoint (``SKIP LOCKED``).

Each pass claims up to ``batch_size`` due rows (:func:`sop.engine.agenda.claim`) and
runs their steps in the claiming transaction: per step, a transaction's own cost (begin,
commit, PostgreSQL's WAL flush) was most of what a step cost. Each step's effects and trace
commit with its row closed, and:

- a transaction that meets a transient database error (deadlock, lost connection, restart,
  SQLite busy: :mod:`store.transient`) is run again as a whole; it is no attempt of its
  steps. One that outlasts the retries ends the pass; its rows are still due;
- a step that raises anything else rolls the transaction back; its rows then run one
  transaction each, so that step's error is recorded (retried with backoff, then the
  enrollment fails) and the others go on;
- of an enrollment with two rows in one claim only the first runs; the second is left
  pending for the next claim, so no step reads what another has not written yet.

A crash or SIGKILL loses at most the claim in flight, whose rows are due again at once (its
transaction was rolled back with their locks). On a graceful stop (``stopping`` set) the
claim in flight commits and no other is taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.engine import agenda
from sop.engine.executor import (
    VersionSource,
    backoff,
    capped_customers,
    execute,
    record_failure,
)
from sop.engine.reads import TransactionReads
from sop.engine.steps.base import Renderer, Services
from sop.engine.taken import Taken, take
from sop.engine.transaction import Transaction
from sop.engine.writes import TransactionWrites
from sop.loops import run_until_stopped
from sop.rendering import RenderError
from sop.settings import SopSettings
from store.transient import is_transient, retry_transient

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_BASE = timedelta(seconds=30)
RETRY_MOST = timedelta(hours=1)
#: Errors a retry cannot cure: the enrollment fails at once (its trace says why).
PERMANENT: tuple[type[Exception], ...] = (RenderError,)
#: Claims per ``run_once``: bounds a chain of zero-delay steps (``goto`` loops) per call.
MAX_CLAIMS_PER_RUN = 1000


class Engine:
    def __init__(  # noqa: PLR0917 - the wiring's documented positional order
        self,
        sessions: async_sessionmaker[AsyncSession],
        catalog_provider: Callable[[], VersionSource],
        renderer: Renderer,
        clock: Clock,
        settings: SopSettings,
        zone_default: str,
        *,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog_provider
        self._clock = clock
        self.settings = settings
        self._services = Services(renderer=renderer, settings=settings, zone_default=zone_default)
        self._max_attempts = max_attempts
        #: Set after a pass that created outbox rows' transactions, for the sender's wake.
        self.on_executed: Callable[[], None] | None = None
        self._stopping: asyncio.Event | None = None

    async def run_once(self) -> int:
        """Execute every row due now, claim after claim; how many rows ran."""
        executed = 0
        for claims in range(MAX_CLAIMS_PER_RUN):
            if self._stopping is not None and self._stopping.is_set():
                break  # a graceful stop: the claim in flight committed, claim no more
            ran = await self.run_claim(release_lapsed=claims == 0)
            if ran is None:
                break
            executed += ran
        else:
            log.warning(
                "engine: still due rows after %d claims; a zero-delay goto loop? continuing"
                " on the next tick",
                MAX_CLAIMS_PER_RUN,
            )
        if executed and self.on_executed is not None:
            self.on_executed()
        return executed

    async def run_claim(self, *, release_lapsed: bool = False) -> int | None:
        """Claim due rows once and run them; how many ran (None: nothing was due).
        ``release_lapsed``: first make rows an earlier release left ``running`` past their
        lease due again (``run_once`` does, once a pass)."""
        claimed: list[int] = []
        try:
            return await retry_transient(
                lambda: self._transaction(claimed, release_lapsed=release_lapsed),
                what="engine transaction",
                log=log,
            )
        except Exception as exc:
            if is_transient(exc) or not claimed:
                raise
            if len(claimed) == 1:
                return await self._failed(claimed[0], exc)
        log.info("engine: a step of %d raised; running them one by one", len(claimed))
        return sum([await self._run_alone(agenda_id) for agenda_id in claimed])

    async def run_forever(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """``run_once`` until ``stopping``; idle waits end early on ``wake``."""
        every = self.settings.tick_seconds
        self._stopping = stopping
        try:
            await run_until_stopped(
                self.run_once, wake, stopping, idle_seconds=every, log=log, what="engine"
            )
        finally:
            self._stopping = None  # a later run_once (a test, a tool) may run

    async def _run_alone(self, agenda_id: int) -> int:
        """Row ``agenda_id`` in a transaction of its own, its error recorded if it raises."""
        try:
            ran = await retry_transient(
                lambda: self._transaction([], only=[agenda_id]),
                what=f"engine transaction of agenda row {agenda_id}",
                log=log,
            )
        except Exception as exc:
            if is_transient(exc):
                raise
            return await self._failed(agenda_id, exc)
        return ran or 0

    async def _transaction(
        self,
        claimed: list[int],
        *,
        only: Sequence[int] | None = None,
        release_lapsed: bool = False,
    ) -> int | None:
        """Claim due rows (or take the rows ``only``), run them and commit; how many ran
        (None: nothing was due). ``claimed`` is left holding the ids taken."""
        now = self._clock.now()
        catalog = self._catalog()
        async with self._sessions.begin() as session:
            connection = await session.connection()
            if release_lapsed:
                await agenda.release_lapsed(connection, now=now)
            if only is None:
                rows = await agenda.claim(connection, now=now, limit=self.settings.batch_size)
            else:
                rows = await take(connection, only, now=now)
            claimed[:] = [item.id for item, _, _ in rows]
            if not rows:
                return None
            taken = _one_per_enrollment(rows)
            capped = await capped_customers(session, taken, catalog=catalog)
            customers = {customer.id for _, _, customer in taken if customer is not None}
            reads = TransactionReads(connection, customers, capped)
            run_in = Transaction(session, connection, TransactionWrites(), reads)
            for row in taken:
                await execute(run_in, row, catalog=catalog, services=self._services, now=now)
            await run_in.writes.flush(connection)
        return len(taken)

    async def _failed(self, agenda_id: int, exc: Exception) -> int:
        """Record that row ``agenda_id``'s step raised ``exc``; 1 (the row ran, and failed)."""
        log.exception("agenda row %s failed", agenda_id, exc_info=exc)
        error = f"{type(exc).__name__}: {exc}"

        async def record() -> None:
            now = self._clock.now()
            async with self._sessions.begin() as session:
                failed = await record_failure(
                    session,
                    agenda_id,
                    error,
                    catalog=self._catalog(),
                    now=now,
                    max_attempts=self._max_attempts,
                    retry_after=lambda attempt: backoff(attempt, base=RETRY_BASE, most=RETRY_MOST),
                    permanent=isinstance(exc, PERMANENT),
                )
            if failed is not None:
                log.error("enrollment %s failed: %s", failed.id, error)

        await retry_transient(record, what=f"engine recording agenda row {agenda_id}", log=log)
        return 1


def _one_per_enrollment(taken: list[Taken]) -> list[Taken]:
    """The first taken row of each enrollment (the rest wait for the next claim)."""
    seen: set[int] = set()
    first: list[Taken] = []
    for row in taken:
        if row[1].id not in seen:
            seen.add(row[1].id)
            first.append(row)
    return first
