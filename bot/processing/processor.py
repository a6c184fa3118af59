"""The inbox processor: pending rows, in arrival order, through parse -> router -> handlers.

A batch of rows is claimed in one transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and
prepared once (:mod:`bot.processing.prepare`: parsed, and what the rows name read or created in
one statement per table). Each row then runs as its own unit of the batch (:mod:`store.batch`):
its writes are deferred to the batch's flush, and it gets a SAVEPOINT as soon as it (or a
subscriber) runs a statement. A row whose handler fails is rolled back alone, with everything
its subscribers wrote, and marked ``failed`` with its error, while the rest of the batch
commits. A row is marked done in the same transaction as its effects, so it can never be
processed twice. Should what the batch does for all its rows fail (the look-ups up front, the
writes at the end), the batch is rolled back and replayed with every row in its own savepoint,
reading and writing at once, so the row at fault is the one that fails.

Several processes share the inbox by lanes (:mod:`store.lane_leases`): a processor claims only
rows of the lanes it owns, and a customer's, group's or member's callbacks all share one lane,
so they are processed in arrival order even with many processors. Urgent rows (a customer's
contact events: the welcome waits on them) are taken before routine ones, which keeps the
order of each subject's rows since they share a priority. A transient database error
(a deadlock, a lost connection: :mod:`store.transient`) rolls back the whole batch, which is
tried again: it never marks a row failed, and the lane keeps its order.

A batch ends after ``batch_seconds`` on the processor's clock (rows left over stay pending) and
sizes its claim to fit: on SQLite the answer path's inbox writer waits for the same write lock,
and for the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial

from sqlalchemy import Integer, Select, bindparam, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.processing.context import HandlerContext
from bot.processing.inbox_marks import mark
from bot.processing.prepare import Claimed, Prepared, prepare
from bot.processing.roster import Roster
from bot.processing.router import Router
from sop.clock import Clock
from sop.events import EventBus
from sop.loop_status import note_failure, note_pass
from store.batch import Batch
from store.lane_leases import AllLanes, LaneSource
from store.models import InboxRow, InboxState
from store.transient import describe, is_transient, retry_transient

log = logging.getLogger(__name__)

#: How long run_forever sleeps when nothing wakes it.
POLL_INTERVAL = 1.0
#: The longest error text kept on a row.
MAX_ERROR = 2000
#: How long one batch may keep its transaction: on SQLite it holds the write lock the answer
#: path's inbox writer waits for, and runs on the event loop; on PostgreSQL only row locks
#: other processors skip, while each statement is a round trip worth sharing among more rows.
BATCH_SECONDS = {"sqlite": 0.02, "postgresql": 0.1}
#: The most rows a batch claims (its time, above, usually ends it first on SQLite).
BATCH_ROWS = {"sqlite": 100, "postgresql": 400}
#: How long a batch's rows may keep the event loop before the batch lets other tasks run.
#: Not on SQLite: the answer path waits for the batch's write lock anyway, and the batch's
#: time would run out on the others' work; on PostgreSQL it waits for nothing of the batch.
YIELD_SECONDS = {"sqlite": None, "postgresql": 0.005}
#: The fewest rows a batch claims and takes before its time can end it: below that, the
#: batch's own statements (claim, look-ups, flush, commit) cost more than its rows.
MIN_BATCH = 16
#: Turns of the event loop the processor gives away between batches: enough for requests
#: read meanwhile to reach the inbox writer, which then takes the write lock first.
HANDOVER_TURNS = 3


def _claim_statement(*, by_lane: bool) -> Select[int, str, str, str, datetime]:
    """Built once (with bound parameters): building a statement costs more than running it."""
    claim = select(
        InboxRow.id,
        InboxRow.source,
        InboxRow.content_type,
        InboxRow.payload,
        InboxRow.received_at,
    ).where(InboxRow.state == literal_column("'pending'"))  # the partial index's own predicate
    if by_lane:
        claim = claim.where(InboxRow.lane.in_(bindparam("lanes", expanding=True)))
    return (
        claim.order_by(InboxRow.priority, InboxRow.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )


_CLAIM_ALL = _claim_statement(by_lane=False)
_CLAIM_LANES = _claim_statement(by_lane=True)
#: SQLite's claim (one writer: every lane, no row locks), naming its index: without
#: statistics SQLite would rather read ``(state, id)`` and sort the whole backlog.
_CLAIM_SQLITE = (
    text(
        "SELECT id, source, content_type, payload, received_at"
        " FROM inbox INDEXED BY ix_inbox_pending_priority_id"
        " WHERE state = 'pending' ORDER BY priority, id LIMIT :limit"
    )
    .bindparams(bindparam("limit", type_=Integer))
    .columns(
        InboxRow.id, InboxRow.source, InboxRow.content_type, InboxRow.payload, InboxRow.received_at
    )
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
        batch_size: int | None = None,
        poll_interval: float = POLL_INTERVAL,
        after_batch: Callable[[], None] | None = None,
        lanes: LaneSource | None = None,
        batch_seconds: float | None = None,
    ) -> None:
        """``after_batch`` runs after a pass that took rows (the server wakes the refresher);
        ``lanes`` says which lanes this process owns (every lane when not given);
        ``batch_size`` and ``batch_seconds`` default to the database's :data:`BATCH_ROWS` and
        :data:`BATCH_SECONDS`."""
        engine = sessions.kw.get("bind")
        dialect = getattr(getattr(engine, "dialect", None), "name", "sqlite")
        if dialect not in BATCH_ROWS:
            dialect = "sqlite"
        if batch_size is None:
            batch_size = BATCH_ROWS[dialect]
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
        if batch_seconds is None:
            batch_seconds = BATCH_SECONDS[dialect]
        self._yield_seconds = YIELD_SECONDS[dialect]
        self._batch_seconds = batch_seconds
        #: How many rows the next batch claims: as many as its time allows, at the last pace.
        self._claim_size = batch_size
        #: Whether the last pass left claimable rows behind (a full claim, or its time ran out).
        self.more_pending = False
        #: Batches committed and rows they took, for the bench and metrics.
        self.batches = 0
        self.rows = 0

    async def run_once(self) -> int:
        """Process one batch of pending rows; returns how many rows were taken (done or failed).

        A batch that meets a transient database error is rolled back and run again.
        """
        lanes = await self.lanes.current()
        if lanes is not None and not lanes:
            self.more_pending = False
            return 0
        return await retry_transient(lambda: self._batch(lanes), what="inbox processing", log=log)

    async def _batch(self, lanes: frozenset[int] | None) -> int:
        try:
            return await self._run_batch(lanes, isolated=False)
        except _SharedWorkFailed as failed:
            log.warning("inbox batch failed (%r); replaying it row by row", failed.__cause__)
            return await self._run_batch(lanes, isolated=True)

    async def _run_batch(self, lanes: frozenset[int] | None, *, isolated: bool) -> int:
        async with self._sessions() as session, session.begin():
            started = self._clock.now()
            if lanes is None:
                sqlite = session.get_bind().dialect.name == "sqlite"
                claim = _CLAIM_SQLITE if sqlite else _CLAIM_ALL
                claimed = await session.execute(claim, {"limit": self._claim_size})
            else:
                params = {"limit": self._claim_size, "lanes": sorted(lanes)}
                claimed = await session.execute(_CLAIM_LANES, params)
            rows = [Claimed(*row) for row in claimed.all()]
            if not rows:
                self.more_pending = False
                return 0
            async with Batch(session, isolated=isolated) as batch:
                taken = await self._process_batch(session, batch, rows)
        self.more_pending = len(rows) == self._claim_size or taken < len(rows)
        self._pace(taken, (self._clock.now() - started).total_seconds())
        self.batches += 1
        self.rows += taken
        return taken

    def _pace(self, taken: int, seconds: float) -> None:
        """Size the next claim so that its batch fits ``batch_seconds`` at this batch's pace
        (a claimed row the batch has no time for was parsed and looked up for nothing)."""
        if seconds <= 0:
            self._claim_size = self._batch_size
            return
        fits = int(taken * self._batch_seconds / seconds)
        wanted = max(min(MIN_BATCH, self._batch_size), min(self._batch_size, fits))
        self._claim_size = max(1, (self._claim_size + wanted) // 2)

    async def _process_batch(
        self, session: AsyncSession, batch: Batch, rows: list[Claimed]
    ) -> int:
        started = self._clock.now()
        try:
            prepared, roster = await prepare(batch, rows, self._router, self._bus, started)
        except Exception as exc:
            if batch.isolated or is_transient(exc):
                raise
            raise _SharedWorkFailed from exc
        done: list[int] = []
        failed: list[tuple[int, str]] = []
        paced = time.monotonic()
        for item in prepared:
            error = await self._process(session, batch, roster, item)
            if error is None:
                done.append(item.row.id)
            else:
                failed.append((item.row.id, error))
            taken = len(done) + len(failed)
            if (
                taken >= MIN_BATCH
                and (self._clock.now() - started).total_seconds() >= self._batch_seconds
            ):
                break
            if self._yield_seconds is not None and time.monotonic() - paced >= self._yield_seconds:
                await asyncio.sleep(0)
                paced = time.monotonic()
        try:
            await batch.flush()
        except Exception as exc:
            if batch.isolated or is_transient(exc):
                raise
            raise _SharedWorkFailed from exc
        await mark(session, done, failed, self._clock.now())
        return len(done) + len(failed)

    async def _process(
        self, session: AsyncSession, batch: Batch, roster: Roster, item: Prepared
    ) -> str | None:
        """Run one row as a unit of the batch; its error text if it failed."""
        row = item.row
        try:
            if item.error is not None:
                raise item.error
            assert item.message is not None
            async with batch.unit():
                context = HandlerContext(
                    session=session,
                    clock=self._clock,
                    inbox_id=row.id,
                    source=row.source,
                    received_at=row.received_at,
                    publish=partial(self._bus.publish, session),
                    batch=batch,
                    roster=roster,
                )
                await self._router.dispatch(context, item.message)
        except Exception as exc:
            if is_transient(exc):
                raise TransientRowError(f"inbox row {row.id}: {exc}") from exc
            error = describe_error(exc)
            log.warning("inbox row %s (%s) failed: %s", row.id, row.source, error, exc_info=exc)
            return error
        return None

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
                self.more_pending = False
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
            if self.more_pending:
                for _ in range(HANDOVER_TURNS):  # between batches: the answer path's turn
                    await asyncio.sleep(0)
            else:
                await wait_any(wake, stop, seconds=self._poll_interval)


class _SharedWorkFailed(Exception):
    """What the batch does for all its rows (the look-ups up front, the writes at the end)
    failed; the batch is replayed row by row."""


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
