"""Claiming due agenda rows, in the transaction that runs them.

The engine claims a batch of due rows and runs their steps in one transaction
(:mod:`sop.engine.runner`): :func:`claim` locks up to ``limit`` due rows (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, so engines side by side take disjoint rows; on SQLite the
transaction begins ``IMMEDIATE`` and one writer runs at a time), the steps run, and their
effects (outbox rows, tasks, the next agenda rows) commit with the rows' ``done``. Nothing
is marked in between: a transaction that does not commit (an error, a crash, a lost
connection) leaves its rows pending and due, for this engine or another to take at once,
and has no effects, so running them again is safe and nothing runs twice.

Which rows: first steps that fell due in the last :data:`FRESH` (what an event that just
arrived enrolled: a welcome message, whose code lives 20 seconds), newest first, for up to
half the batch; then the oldest due rows. A customer's first touch never queues behind a
backlog, and the backlog still gets half of every batch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, func, literal_column, select, text, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from sop.delivery.messages import WELCOME_CODE_VALIDITY
from sop.engine.taken import Taken, due, taken_rows, taking
from store.models import AgendaItem, AgendaState
from store.models.base import UTCDateTime
from store.models.engine import FIRST_STEP_PENDING

_A = AgendaItem

#: A first step due this recently is claimed before older rows: the welcome message's code
#: is valid for 20 seconds after the add event.
FRESH = WELCOME_CODE_VALIDITY


def _fresh(postgres: bool) -> Any:
    """First steps that fell due within :data:`FRESH`, newest first (``lane`` of them)."""
    if not postgres:  # SQLite's planner would take the wider (state, due_at) index
        return (
            text(
                "SELECT id, due_at FROM agenda INDEXED BY ix_agenda_first_steps"
                f" WHERE {FIRST_STEP_PENDING} AND due_at <= :now AND due_at > :fresh_since"
                " ORDER BY due_at DESC, id DESC LIMIT :lane"
            )
            .bindparams(
                bindparam("now", type_=UTCDateTime()),
                bindparam("fresh_since", type_=UTCDateTime()),
            )
            .columns(_A.id, _A.due_at)
        )
    return (
        select(_A.id, _A.due_at)
        .where(
            text(FIRST_STEP_PENDING),  # literally, so the planner may use ix_agenda_first_steps
            _A.due_at <= bindparam("now"),
            _A.due_at > bindparam("fresh_since"),
        )
        .order_by(_A.due_at.desc())  # not by id: see _oldest
        .limit(bindparam("lane"))
        .with_for_update(skip_locked=True)
    )


def _oldest(postgres: bool) -> Any:
    """The oldest due rows (``limit`` of them): an ordered range of ``(state, due_at)``
    that stops at the limit. Rows due at the same time are taken in index order: SQLite's
    index ends with the row id, PostgreSQL's does not, and ordering by ``id`` there would
    sort every row of a tie (a fan-out's thousands, due at once) on every claim."""
    order = (_A.due_at,) if postgres else (_A.due_at, _A.id)
    return (
        select(_A.id, _A.due_at)
        .where(_A.state == AgendaState.PENDING, _A.due_at <= bindparam("now"))
        .order_by(*order)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )


def _claim(postgres: bool) -> Any:
    """The whole claim in one statement (one round trip on PostgreSQL): the fresh lane and
    the oldest rows in two CTEs (locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, which
    evaluates a locking CTE once), then taken with their enrollments and customers
    (:func:`sop.engine.taken.taking`) by primary key from the claimed ids, lane first."""
    fresh = _fresh(postgres).cte("fresh")
    lane_size = select(func.count()).select_from(fresh).scalar_subquery()
    oldest = (
        _oldest(postgres)
        .where(_A.id.not_in(select(fresh.c.id)))
        .limit(bindparam("limit") - lane_size)
        .cte("oldest")
    )
    claimed = union_all(
        select(fresh.c.id, literal_column("0").label("part")),
        select(oldest.c.id, literal_column("1").label("part")),
    ).subquery("claimed")
    rows = claimed.join(_A, _A.id == claimed.c.id)
    return taking(rows).order_by(claimed.c.part, _A.due_at, _A.id)


CLAIM = {postgres: _claim(postgres) for postgres in (False, True)}


async def claim(connection: AsyncConnection, *, now: datetime, limit: int) -> list[Taken]:
    """Lock up to ``limit`` due rows in this transaction and take them (:func:`take`): fresh
    first steps (the newest, up to half) first, then the oldest, each part oldest first."""
    statement = CLAIM[connection.dialect.name == "postgresql"]
    params = {"now": now, "fresh_since": now - FRESH, "lane": (limit + 1) // 2, "limit": limit}
    return taken_rows(await connection.execute(statement, params))


#: Rows an engine of an earlier release left ``running`` (it claimed rows in a transaction
#: of their own, with a lease) are due again once their lease has passed.
_RELEASE_LAPSED = (
    update(_A)
    .where(_A.state == AgendaState.RUNNING, _A.lease_until < bindparam("now"))
    .values(state=AgendaState.PENDING, lease_until=None, updated_at=bindparam("now"))
)


async def release_lapsed(connection: AsyncConnection, *, now: datetime) -> None:
    """Put rows left ``running`` past their lease back to ``pending``."""
    await connection.execute(_RELEASE_LAPSED, {"now": now})


async def lock_due(session: AsyncSession, agenda_id: int, *, now: datetime) -> AgendaItem | None:
    """The row ``agenda_id`` locked in this transaction if it is still due, else None (it
    ran meanwhile, or another engine holds it)."""
    return (
        await session.execute(
            select(_A)
            .where(_A.id == agenda_id, due(now))
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


#: A taken row closed, as one Core UPDATE built once (``last_error`` kept unless one is
#: given); :class:`sop.engine.writes.TransactionWrites` runs it for all the rows it closes.
CLOSE = (
    update(_A)
    .where(_A.id == bindparam("agenda_id"))
    .values(
        state=bindparam("new_state"),
        lease_until=None,
        updated_at=bindparam("now"),
        last_error=func.coalesce(bindparam("error", type_=Text), _A.last_error),
    )
)


def finish(
    item: AgendaItem, state: AgendaState, *, now: datetime, error: str | None = None
) -> None:
    """Close a row (``done``, ``skipped``, ``cancelled``)."""
    item.state = state
    item.lease_until = None
    item.updated_at = now
    if error is not None:
        item.last_error = error


def release_for_retry(item: AgendaItem, *, now: datetime, retry_at: datetime, error: str) -> None:
    """Put a row whose step raised back on the agenda at ``retry_at``: one more failed
    attempt, with its error."""
    item.state = AgendaState.PENDING
    item.lease_until = None
    item.attempts += 1
    item.due_at = retry_at
    item.last_error = error
    item.updated_at = now
