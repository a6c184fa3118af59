"""Fetch what ``refresh_requests`` asks for from the WeCom API and apply it to the model.

A batch of due requests is claimed in a short transaction (a lease in ``claimed_until``,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL), then fetched with no transaction open, so a slow
API never holds a lock the inbox processor needs. Each result is applied in its own
transaction with the events it publishes. A failed fetch is rescheduled with exponential
backoff and jitter and keeps its ``last_error``; a permanent "not found" drops the request.
When the loop is told to stop, requests claimed but not fetched yet are given back at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.processing.directory import DirectoryApi
from bot.processing.processor import describe_error, wait_any
from bot.processing.sync.base import Sync, SyncContext
from bot.processing.sync.registry import SYNCS
from bot.wecom.errors import WecomApiError
from sop.clock import Clock
from sop.events import EventBus
from sop.loop_status import note_failure, note_pass
from store.models import RefreshRequest
from store.transient import retry_transient

log = logging.getLogger(__name__)

#: errcodes meaning the object is gone for good: 40003 invalid userid, 40050 chat id does
#: not exist, 40096 invalid external userid, 60111 userid not found, 84061 no relationship.
NOT_FOUND_ERRCODES = frozenset({40003, 40050, 40096, 60111, 84061})


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, WecomApiError) and exc.errcode in NOT_FOUND_ERRCODES


@dataclass(frozen=True)
class _Claimed:
    id: int
    kind: str
    key: str
    version: int
    attempts: int


class Refresher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        directory: DirectoryApi,
        bus: EventBus,
        clock: Clock,
        *,
        batch_size: int = 20,
        lease: float = 300.0,
        base_delay: float = 30.0,
        max_delay: float = 6 * 3600.0,
        poll_interval: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._bus = bus
        self._clock = clock
        self._batch_size = batch_size
        self._lease = timedelta(seconds=lease)
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._poll_interval = poll_interval
        self._rng = rng or random.Random()
        self._stop = asyncio.Event()

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failure: doubling, capped, times 0.5-1 (jitter)."""
        delay = min(self._max_delay, self._base_delay * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=delay * (0.5 + self._rng.random() / 2))

    async def run_once(self) -> int:
        """Claim, fetch and apply one batch; returns how many requests were taken."""
        claimed = await self._claim()
        for index, request in enumerate(claimed):
            if self._stop.is_set():
                await self._release(claimed[index:])
                break
            await self._refresh(request)
        return len(claimed)

    async def run_forever(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        self._stop = stop
        try:
            await self._loop(wake, stop)
        finally:
            self._stop = asyncio.Event()  # a later run_once (a test, a tool) may fetch

    async def _loop(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wake.clear()
            try:
                taken = await self.run_once()
                note_pass()
            except Exception as error:
                note_failure(error)
                log.exception("refresh pass failed; retrying in %ss", self._poll_interval)
                taken = 0
            if taken < self._batch_size:
                await wait_any(wake, stop, seconds=self._poll_interval)

    async def _claim(self) -> list[_Claimed]:
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    select(
                        RefreshRequest.id,
                        RefreshRequest.kind,
                        RefreshRequest.key,
                        RefreshRequest.version,
                        RefreshRequest.attempts,
                    )
                    .where(
                        RefreshRequest.due_at <= now,
                        or_(
                            RefreshRequest.claimed_until.is_(None),
                            RefreshRequest.claimed_until <= now,
                        ),
                    )
                    .order_by(RefreshRequest.due_at, RefreshRequest.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            claimed = [_Claimed(*row) for row in rows]
            if claimed:
                await session.execute(
                    update(RefreshRequest)
                    .where(RefreshRequest.id.in_([c.id for c in claimed]))
                    .values(claimed_until=now + self._lease)
                    .execution_options(synchronize_session=False)
                )
        return claimed

    async def _release(self, requests: list[_Claimed]) -> None:
        """Our lease still holds, so no other refresher has these: unclaim them by id."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(RefreshRequest)
                .where(RefreshRequest.id.in_([r.id for r in requests]))
                .values(claimed_until=None)
                .execution_options(synchronize_session=False)
            )

    async def _refresh(self, request: _Claimed) -> None:
        sync = SYNCS.get(request.kind)
        try:
            if sync is None:
                raise LookupError(
                    f"refresh request {request.id}: unknown kind {request.kind!r} "
                    f"(known: {', '.join(sorted(SYNCS))})"
                )
            result = await sync.fetch(self._directory, request.key)
            await retry_transient(
                lambda: self._apply(request, sync, result),
                what=f"refresh {request.kind} {request.key}",
                log=log,
            )
        except Exception as exc:
            if is_not_found(exc):
                log.info("refresh %s %s: gone (%s); dropped", request.kind, request.key, exc)
                await self._finish(request)
            else:
                await self._failed(request, exc)

    async def _apply(self, request: _Claimed, sync: Sync, result: object) -> None:
        async with self._sessions() as session, session.begin():
            context = SyncContext(
                session=session,
                clock=self._clock,
                publish=partial(self._bus.publish, session),
                source=f"refresh:{request.kind}",
                now=self._clock.now(),
            )
            await sync.apply(context, request.key, result)
            await self._done(session, request)

    async def _done(self, session: AsyncSession, request: _Claimed) -> None:
        """Drop the request, unless it was asked for again while we fetched."""
        result = await session.execute(
            delete(RefreshRequest)
            .where(RefreshRequest.id == request.id, RefreshRequest.version == request.version)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            await session.execute(
                update(RefreshRequest)
                .where(RefreshRequest.id == request.id)
                .values(claimed_until=None, attempts=0, last_error=None)
                .execution_options(synchronize_session=False)
            )

    async def _finish(self, request: _Claimed) -> None:
        async with self._sessions() as session, session.begin():
            await self._done(session, request)

    async def _failed(self, request: _Claimed, exc: Exception) -> None:
        error = describe_error(exc)
        attempts = request.attempts + 1
        wait = self.backoff(attempts)
        due = self._clock.now() + wait
        log.warning(
            "refresh %s %s failed (attempt %s, trying again in %.0f s): %s",
            request.kind,
            request.key,
            attempts,
            wait.total_seconds(),
            error,
        )
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(RefreshRequest)
                .where(RefreshRequest.id == request.id)
                .values(attempts=attempts, last_error=error, due_at=due, claimed_until=None)
                .execution_options(synchronize_session=False)
            )
