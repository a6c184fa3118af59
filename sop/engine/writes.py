"""What the steps of one engine transaction write, gathered and written together.

The engine runs the rows of a claim in one transaction (:mod:`sop.engine.runner`); each
step still decides on its own, but its writes (outbox rows, marketing touches, its trace,
its row closed, the enrollment moved on or ended, the next agenda row) are kept here and
sent at the end as one ``executemany`` per statement (:class:`sop.engine.bulk.Bulk`), so a
transaction of 50 steps costs a handful of round trips instead of 50 times ten. They commit
with the transaction or not at all, which is what made a step safe to run again before.

What a later step of the same transaction must see is answered here rather than by the
database: the marketing touches decided so far per customer (the frequency cap counts
them). An enrollment appears at most once per transaction (the runner sees to it), so no
step reads another's pending enrollment or agenda writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sop.engine.agenda import CLOSE
from sop.engine.bulk import Bulk
from sop.engine.lifecycle import BUMP, CANCEL_ALL, END, NEXT
from sop.engine.taken import ids_in
from store.models import (
    AgendaState,
    EnrollmentState,
    MarketingTouch,
    OutboxRow,
    OutboxState,
    StepRun,
)

#: ``outbox.idempotency_key`` holds this many characters.
MAX_KEY_LENGTH = 200


_OUTBOX_COLUMNS = (
    "idempotency_key",
    "channel",
    "recipient",
    "payload",
    "due_at",
    "expires_at",
    "state",
    "attempts",
    "platform_ids",
    "customer_id",
    "created_at",
    "updated_at",
)
#: INSERT ... ON CONFLICT (idempotency_key) DO NOTHING: a key taken already keeps its row.
_OUTBOX = {
    postgres: Bulk(
        dialect_insert(OutboxRow)
        .inline()
        .on_conflict_do_nothing(index_elements=["idempotency_key"]),
        column_keys=_OUTBOX_COLUMNS,
    )
    for postgres, dialect_insert in ((True, postgresql_insert), (False, sqlite_insert))
}
#: Which of a transaction's outbox keys are taken already (its trace then says so).
_EXISTING = {
    postgres: select(OutboxRow.idempotency_key).where(
        ids_in(OutboxRow.idempotency_key, "keys", postgres=postgres, of=String)
    )
    for postgres in (False, True)
}
#: The trace row. Nothing reads it back, so ``inline``: no RETURNING of its id.
TRACE = (
    insert(StepRun)
    .inline()
    .values(
        enrollment_id=bindparam("of_enrollment"),
        seq=bindparam("trace_seq"),
        step_id=bindparam("trace_step_id"),
        action=bindparam("trace_action"),
        due_at=bindparam("trace_due_at"),
        ran_at=bindparam("now"),
        outcome=bindparam("trace_outcome"),
        detail=bindparam("trace_detail"),
    )
)


@dataclass
class TransactionWrites:
    """The pending writes of one engine transaction, in the order :meth:`flush` sends them."""

    outbox: list[dict[str, Any]] = field(default_factory=list)
    touches: list[dict[str, Any]] = field(default_factory=list)
    #: Steps that scheduled a next row: trace, row closed, enrollment bumped, next row.
    moved: list[dict[str, Any]] = field(default_factory=list)
    #: Steps that scheduled nothing (the enrollment ended): trace and row closed.
    stopped: list[dict[str, Any]] = field(default_factory=list)
    #: Rows closed without running a step (superseded, enrollment ended).
    closes: list[dict[str, Any]] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)
    _touched: Counter[int] = field(default_factory=Counter)

    def enqueue(
        self,
        *,
        key: str,
        channel: str,
        recipient: str,
        payload: Mapping[str, Any],
        due_at: datetime,
        now: datetime,
        customer_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        """An outbox row, as :func:`sop.delivery.outbox.enqueue` writes it (the same key
        rules); a key that exists already is left alone and the step's trace says
        ``duplicate``."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(
                f"outbox idempotency key must be 1-{MAX_KEY_LENGTH} characters, got {key!r}"
            )
        if due_at.tzinfo is None or (expires_at is not None and expires_at.tzinfo is None):
            raise ValueError(f"outbox row {key!r}: due_at and expires_at must be timezone-aware")
        self.outbox.append(
            {
                "idempotency_key": key,
                "channel": channel,
                "recipient": recipient,
                "payload": dict(payload),
                "due_at": due_at,
                "expires_at": expires_at,
                "state": OutboxState.PENDING,
                "attempts": 0,
                "platform_ids": {},
                "customer_id": customer_id,
                "created_at": now,
                "updated_at": now,
            }
        )

    def touch(self, customer_id: int, *, source: str, now: datetime) -> None:
        """A marketing touch decided now (:class:`~store.models.MarketingTouch`)."""
        self.touches.append({"customer_id": customer_id, "at": now, "source": source[:200]})
        self._touched[customer_id] += 1

    def touches_of(self, customer_id: int) -> int:
        """Touches of ``customer_id`` decided in this transaction, not yet written."""
        return self._touched[customer_id]

    def close(
        self, agenda_id: int, state: AgendaState, *, now: datetime, error: str | None = None
    ) -> None:
        """The claimed row closed (``last_error`` kept unless ``error`` is given)."""
        self.closes.append(
            {"agenda_id": agenda_id, "new_state": state, "now": now, "error": error}
        )

    def step(
        self,
        trace: dict[str, Any],
        agenda_id: int,
        state: AgendaState,
        scheduled: dict[str, Any] | None,
    ) -> None:
        """What a step writes about itself: its trace (parameters of :data:`TRACE`), its
        row closed (``state``), and, if it scheduled one, the enrollment's new ``seq`` and
        ``waiting`` with the next row (parameters of :data:`~sop.engine.lifecycle.BUMP`
        and :data:`~sop.engine.lifecycle.NEXT`). Parameter names are unique among those
        statements, so one dictionary serves them all."""
        params = trace | {"agenda_id": agenda_id, "new_state": state, "error": None}
        if scheduled is None:
            self.stopped.append(params)
        else:
            self.moved.append(params | scheduled)

    def end(
        self, enrollment_id: int, state: EnrollmentState, *, reason: str, now: datetime
    ) -> None:
        """The enrollment ended, and whatever it still had pending cancelled."""
        self.ends.append(
            {"of_enrollment": enrollment_id, "end_state": state, "reason": reason, "now": now}
        )

    async def flush(self, connection: AsyncConnection) -> None:
        """Send everything, one statement per kind of write, each with all its rows. Rows
        are closed before enrollments end: an ending cancels the enrollment's pending rows,
        and a claimed row is pending until its transaction closes it."""
        postgres = connection.dialect.name == "postgresql"
        if self.outbox:
            keys = [row["idempotency_key"] for row in self.outbox]
            found = await connection.execute(_EXISTING[postgres], {"keys": keys})
            existing = set(found.scalars())
            if existing:
                _mark_duplicates([*self.moved, *self.stopped], existing)
            await _OUTBOX[postgres].run(connection, self.outbox)
        await _TOUCH.run(connection, self.touches)
        if postgres:  # a step's writes as one statement (data-modifying CTEs run once each)
            await _MOVED_PG.run(connection, self.moved)
            await _STOPPED_PG.run(connection, self.stopped)
        else:
            steps = [*self.moved, *self.stopped]
            await _TRACE.run(connection, steps)
            await _CLOSE.run(connection, steps)
            await _BUMP.run(connection, self.moved)
            await _NEXT.run(connection, self.moved)
        await _CLOSE.run(connection, self.closes)
        await _END.run(connection, self.ends)
        await _CANCEL_ALL.run(connection, self.ends)
        self.outbox, self.touches, self.moved, self.stopped = [], [], [], []
        self.closes, self.ends = [], []
        self._touched.clear()


_TOUCH = Bulk(insert(MarketingTouch).inline(), column_keys=["customer_id", "at", "source"])
_TRACE = Bulk(TRACE)
_CLOSE = Bulk(CLOSE)
_END, _CANCEL_ALL = Bulk(END), Bulk(CANCEL_ALL)
_BUMP, _NEXT = Bulk(BUMP), Bulk(NEXT)
_MOVED_PG = Bulk(NEXT.add_cte(CLOSE.cte("closed"), TRACE.cte("traced"), BUMP.cte("bumped")))
_STOPPED_PG = Bulk(TRACE.add_cte(CLOSE.cte("closed")))


def _mark_duplicates(traces: list[dict[str, Any]], existing: set[str]) -> None:
    """Say in each trace whose outbox row already existed that nothing new was queued."""
    for params in traces:
        detail = params["trace_detail"]
        if detail.get("outbox_key") in existing:
            params["trace_detail"] = detail | {"duplicate": True}
