"""The inbox processor: pending rows, in arrival order, through parse -> router -> handlers.

A batch of rows is claimed in one transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL). Each
row runs in its own SAVEPOINT: a row whose handler fails is rolled back alone, with everything
its subscribers wrote, and marked ``failed`` with its error, while the rest of the batch
commits. A row is marked done in the same transaction as its effects, so it can never be
processed twice.

Several processes share the inbox by lanes (:mod:`store.lane_leases`): a processor claims only
rows of the lanes it owns, and a customer's, group's or member's callbacks all share one lane,
so they are processed in arrival order even with many processors. Urgent rows (a customer's
contact events: the welcome waits on them) are taken before routine ones, which keeps the
order of each subject's rows since they share a priority. A transient database error
(a deadlock, a lost connection: :mod:`store.transient`) rolls back the whole batch, which is
tried again: it never marks a row failed, and the lane keeps its order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import NamedTuple

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.processing import refresh_queue
from bot.processing.context import HandlerContext
from bot.processing.first_staff import create_named_staff
from bot.processing.parse import parse_payload
from bot.processing.router import Router
from sop.clock import Clock
from sop.events import EventBus
from sop.loop_status import note_failure, note_pass
from store.lane_leases import AllLanes, LaneSource
from store.models import InboxRow, InboxState
from store.transient import describe, is_transient, retry_transient

log = logging.getLogger(__name__)

#: How long run_forever sleeps when nothing wakes it.
POLL_INTERVAL = 1.0
#: The longest error text kept on a row.
MAX_ERROR = 2000


class _Claimed(NamedTuple):
    id: int
    source: str
    content_type: str
    payload: str
    received_at: datetime


_columns = InboxRow.__table__.c
#: Built once (with bound parameters): building a statement costs more than running it.
_FINISH = (
    update(InboxRow)
    .where(InboxRow.id == bindparam("row_id"), InboxRow.state == InboxState.PENDING)
    .values(
        state=bindparam("new_state", type_=_columns.state.type),
        error=bindparam("new_error", type_=_columns.error.type),
        attempts=InboxRow.attempts + 1,
        processed_at=bindparam("now", type_=_columns.processed_at.type),
    )
    .execution_options(synchronize_session=False)
)


def _claim_statement(limit: int, *, by_lane: bool) -> Select[int, str, str, str, datetime]:
    claim = select(
        InboxRow.id,
        InboxRow.source,
        InboxRow.content_type,
        InboxRow.payload,
        InboxRow.received_at,
    ).where(InboxRow.state == InboxState.PENDING)
    if by_lane:
        claim = claim.where(InboxRow.lane.in_(bindparam("lanes", expanding=True)))
    return (
        claim.order_by(InboxRow.priority.desc(), InboxRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


class TransientRowError(Exception):
    """A row met a transient database error: the batch is rolled back and tried again."""


def describe_error(exc: BaseException) -> str:
    """``Type: message``, the way an operator reads it on a failed row."""
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


class InboxProcessor:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        router: Router,
        bus: EventBus,
        clock: Clock,
        *,
        batch_size: int = 100,
        poll_interval: float = POLL_INTERVAL,
        after_batch: Callable[[], None] | None = None,
        lanes: LaneSource | None = None,
    ) -> None:
        """``after_batch`` runs after a pass that took rows (the server wakes the refresher);
        ``lanes`` says which lanes this process owns (every lane when not given)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._sessions = sessions
        self._router = router
        self._bus = bus
        self._clock = clock
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._after_batch = after_batch
        self.lanes: LaneSource = lanes or AllLanes()
        self._claim_all = _claim_statement(batch_size, by_lane=False)
        self._claim_lanes = _claim_statement(batch_size, by_lane=True)

    async def run_once(self) -> int:
        """Process one batch of pending rows; returns how many rows were taken (done or failed).

        A batch that meets a transient database error is rolled back and run again.
        """
        lanes = await self.lanes.current()
        if lanes is not None and not lanes:
            return 0
        return await retry_transient(lambda: self._batch(lanes), what="inbox processing", log=log)

    async def _batch(self, lanes: frozenset[int] | None) -> int:
        async with self._sessions() as session, session.begin():
            if lanes is None:
                result = await session.execute(self._claim_all)
            else:
                result = await session.execute(self._claim_lanes, {"lanes": sorted(lanes)})
            rows = result.all()
            await create_named_staff(
                session, ((row.content_type, row.payload) for row in rows), self._clock.now()
            )
            refreshes = refresh_queue.defer_refreshes(session)
            for row in rows:
                await self._process(session, _Claimed._make(row), refreshes)
            await refreshes.flush(session)
        return len(rows)

    async def _process(
        self, session: AsyncSession, row: _Claimed, refreshes: refresh_queue.DeferredRefreshes
    ) -> None:
        row_id, source = row.id, row.source
        mark = refreshes.mark()
        try:
            async with session.begin_nested():
                message = parse_payload(source, row.content_type, row.payload)
                context = HandlerContext(
                    session=session,
                    clock=self._clock,
                    inbox_id=row_id,
                    source=source,
                    received_at=row.received_at,
                    publish=partial(self._bus.publish, session),
                )
                await self._router.dispatch(context, message)
                await self._finish(session, row_id, InboxState.DONE, None)
        except Exception as exc:
            if is_transient(exc):
                raise TransientRowError(f"inbox row {row_id}: {exc}") from exc
            refreshes.rollback_to(mark)
            error = describe_error(exc)
            log.warning("inbox row %s (%s) failed: %s", row_id, source, error, exc_info=exc)
            await self._finish(session, row_id, InboxState.FAILED, error)

    async def _finish(
        self, session: AsyncSession, row_id: int, state: InboxState, error: str | None
    ) -> None:
        result = await session.execute(
            _FINISH,
            {"row_id": row_id, "new_state": state, "new_error": error, "now": self._clock.now()},
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise RuntimeError(f"inbox row {row_id} is no longer pending; not processing it again")

    async def retry(self, ids: list[int] | None = None) -> int:
        """Put failed rows (all of them when ``ids`` is None) back to pending."""
        return await retry_failed(self._sessions, ids)

    async def run_forever(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        """Process until ``stop`` is set; sleep until ``wake`` (or the poll interval) when idle.

        Nothing a row does stops the loop; a database outage is logged and retried.
        """
        while not stop.is_set():
            wake.clear()
            try:
                taken = await self.run_once()
                note_pass()
            except Exception as error:
                note_failure(error)
                if is_transient(error):
                    log.warning(
                        "inbox processing interrupted: %s; retrying in %ss",
                        describe(error),
                        self._poll_interval,
                    )
                else:
                    log.exception(
                        "inbox processing pass failed; retrying in %ss", self._poll_interval
                    )
                taken = 0
            if taken and self._after_batch is not None:
                self._after_batch()
            if taken < self._batch_size:
                await wait_any(wake, stop, seconds=self._poll_interval)


async def retry_failed(
    sessions: async_sessionmaker[AsyncSession], ids: list[int] | None = None
) -> int:
    """Put failed inbox rows (all of them when ``ids`` is None) back to pending."""
    stmt = update(InboxRow).where(InboxRow.state == InboxState.FAILED)
    if ids is not None:
        stmt = stmt.where(InboxRow.id.in_(ids))
    async with sessions() as session, session.begin():
        result = await session.execute(
            stmt.values(state=InboxState.PENDING).execution_options(synchronize_session=False)
        )
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


async def wait_any(*events: asyncio.Event, seconds: float) -> None:
    """Return when one of ``events`` is set or ``seconds`` have passed."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
