"""The engine loop: claim due agenda rows, execute each in its own transaction, repeat.

Wiring (for the composition root, ``bot/server.py``)::

    engine = Engine(sessions, lambda: runtime.catalog, renderer, clock, settings.sop,
                    zone_default, build_context=build_context)
    await engine.run_forever(wake, stopping)   # a background task next to the sender

``run_once`` executes everything due now (what tests and ``preview`` call after moving the
clock); ``run_forever`` does that on every ``wake`` (the scheduler's tick, a new
enrollment) or every ``tick_seconds``. Several engines may run against one PostgreSQL
database: claims are disjoint (``SKIP LOCKED``) and each row commits with its effects.
When ``stopping`` is set, the engine finishes the row it is running and gives the rest of its
claim back (:func:`sop.engine.agenda.release`) for another engine to take at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.engine.agenda import Claim, claim_due, release
from sop.engine.executor import VersionSource, backoff, execute, record_failure
from sop.engine.steps.base import ContextBuilder, Renderer, Services
from sop.loops import run_until_stopped
from sop.rendering import RenderError, build_context
from sop.settings import SopSettings
from store.transient import retry_transient

log = logging.getLogger(__name__)

#: How long a claimed row is ours; a row still running after it is due again (a crash).
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
RETRY_BASE = timedelta(seconds=30)
RETRY_MOST = timedelta(hours=1)
#: Errors a retry cannot cure: the enrollment fails at once (its trace says why).
PERMANENT: tuple[type[Exception], ...] = (RenderError,)
#: Claims per ``run_once``: bounds a chain of zero-delay steps (``goto`` loops) per call.
MAX_CLAIMS_PER_RUN = 1000


def _default_context_builder() -> ContextBuilder:
    builder: ContextBuilder = build_context
    return builder


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
        build_context: ContextBuilder | None = None,
        lease: timedelta = LEASE,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog_provider
        self._clock = clock
        self.settings = settings
        self._services = Services(
            renderer=renderer,
            build_context=build_context or _default_context_builder(),
            settings=settings,
            zone_default=zone_default,
        )
        self._lease = lease
        self._max_attempts = max_attempts
        #: Set after a pass that created outbox rows' transactions, for the sender's wake.
        self.on_executed: Callable[[], None] | None = None
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Execute every row due now, batch after batch; how many rows ran."""
        executed = 0
        for _ in range(MAX_CLAIMS_PER_RUN):
            if self._stopping.is_set():
                break
            claims = await self._claim()
            if not claims:
                break
            for index, claim in enumerate(claims):
                if self._stopping.is_set():
                    await self._release(claims[index:])
                    break
                if await self._execute(claim):
                    executed += 1
        else:
            log.warning(
                "engine: still due rows after %d claims; a zero-delay goto loop? continuing"
                " on the next tick",
                MAX_CLAIMS_PER_RUN,
            )
        if executed and self.on_executed is not None:
            self.on_executed()
        return executed

    async def run_forever(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """``run_once`` until ``stopping``; idle waits end early on ``wake``."""
        every = self.settings.tick_seconds
        self._stopping = stopping
        try:
            await run_until_stopped(
                self.run_once, wake, stopping, idle_seconds=every, log=log, what="engine"
            )
        finally:
            self._stopping = asyncio.Event()  # a later run_once (a test, a tool) may run

    async def _claim(self) -> list[Claim]:
        async with self._sessions.begin() as session:
            return await claim_due(
                session,
                now=self._clock.now(),
                limit=self.settings.batch_size,
                lease=self._lease,
            )

    async def _release(self, claims: list[Claim]) -> None:
        async with self._sessions.begin() as session:
            await release(session, claims, now=self._clock.now())
        log.info("engine stopping: %d claimed step(s) given back to the agenda", len(claims))

    async def _execute(self, claim: Claim) -> bool:
        """One row in its own transaction; a step that raises is recorded in another. A
        transient database error (a lost connection, a deadlock) rolled the step back with
        all its effects: it is run again at once, not recorded as a failed attempt."""
        now = self._clock.now()

        async def attempt() -> object:
            async with self._sessions.begin() as session:
                return await execute(
                    session, claim, catalog=self._catalog(), services=self._services, now=now
                )

        try:
            outcome = await retry_transient(attempt, what=f"agenda row {claim.id}", log=log)
        except Exception as exc:
            log.exception("agenda row %s (enrollment %s) failed", claim.id, claim.enrollment_id)
            permanent = isinstance(exc, PERMANENT)
            await self._failed(claim, f"{type(exc).__name__}: {exc}", permanent=permanent)
            return True
        return outcome is not None

    async def _failed(self, claim: Claim, error: str, *, permanent: bool) -> None:
        now = self._clock.now()
        retry_at = now + backoff(claim.attempts, base=RETRY_BASE, most=RETRY_MOST)
        async with self._sessions.begin() as session:
            failed = await record_failure(
                session,
                claim,
                error,
                catalog=self._catalog(),
                now=now,
                max_attempts=self._max_attempts,
                retry_at=retry_at,
                permanent=permanent,
            )
        if failed:
            log.error("enrollment %s failed: %s", claim.enrollment_id, error)
