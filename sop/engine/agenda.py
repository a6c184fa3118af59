"""Claiming due agenda rows with a lease, and taking one claimed row back for execution.

A pass of the engine is two kinds of transaction:

1. :func:`claim_due`: lock up to ``limit`` due rows, oldest due first (``FOR UPDATE SKIP
   LOCKED`` on PostgreSQL, so engines side by side take disjoint rows; on SQLite the
   transaction begins ``IMMEDIATE`` and one writer claims at a time), mark them ``running``
   until ``lease_until`` with one more attempt, commit. Rows left ``running`` past their lease
   (an engine that crashed or hung) are simply due again and are claimed the same way.
2. per claimed row, :func:`reacquire` in its own transaction: lock the row again and check it
   is still ``running`` under *our* claim (same attempt, same lease). The step's effects
   (outbox rows, tasks, tags, the next agenda row) and the row's ``done`` commit together, so
   a row whose transaction did not commit has no effects and running it again is safe; a row
   another engine recovered after our lease lapsed fails the check and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from store.models import (
    AgendaItem,
    AgendaKind,
    AgendaState,
    Customer,
    Enrollment,
    EnrollmentState,
    Waiting,
)

_A = AgendaItem


@dataclass(frozen=True)
class Claim:
    """One claimed row, as the claiming transaction left it: the token :func:`reacquire`
    checks (``attempts``, ``lease_until``) and what the executor needs to find the work."""

    id: int
    enrollment_id: int
    seq: int
    attempts: int
    lease_until: datetime
    due_at: datetime


def _due(now: datetime) -> object:
    return or_(
        and_(_A.state == AgendaState.PENDING, _A.due_at <= now),
        and_(_A.state == AgendaState.RUNNING, _A.lease_until < now),
    )


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, lease: timedelta
) -> list[Claim]:
    """Claim up to ``limit`` due rows (pending and due, or running past their lease)."""
    rows = (
        await session.execute(
            select(_A.id, _A.enrollment_id, _A.seq, _A.attempts, _A.due_at)
            .where(_due(now))  # type: ignore[arg-type]
            .order_by(_A.due_at, _A.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return []
    lease_until = now + lease
    await session.execute(
        update(_A)
        .where(_A.id.in_([row.id for row in rows]))
        .values(
            state=AgendaState.RUNNING,
            lease_until=lease_until,
            attempts=_A.attempts + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return [
        Claim(
            id=row.id,
            enrollment_id=row.enrollment_id,
            seq=row.seq,
            attempts=row.attempts + 1,
            lease_until=lease_until,
            due_at=row.due_at,
        )
        for row in rows
    ]


#: A claimed row put back untouched, if it is still ours: pending again, due as it was, the
#: claim's attempt not counted.
_AGENDA = AgendaItem.metadata.tables[AgendaItem.__tablename__]
_RELEASE = (
    update(_AGENDA)
    .where(
        _AGENDA.c.id == bindparam("b_id"),
        _AGENDA.c.state == AgendaState.RUNNING,
        _AGENDA.c.attempts == bindparam("b_attempts"),
        _AGENDA.c.lease_until == bindparam("b_lease_until"),
    )
    .values(
        state=AgendaState.PENDING,
        lease_until=None,
        attempts=_AGENDA.c.attempts - 1,
        updated_at=bindparam("b_now"),
    )
)


async def release(session: AsyncSession, claims: list[Claim], *, now: datetime) -> None:
    """Give back claimed rows that were not run (a graceful stop), so another engine takes
    them at once instead of when the lease lapses."""
    if claims:
        params = [
            {"b_id": c.id, "b_attempts": c.attempts, "b_lease_until": c.lease_until, "b_now": now}
            for c in claims
        ]
        await session.execute(_RELEASE, params)


async def reacquire(session: AsyncSession, claim: Claim) -> AgendaItem | None:
    """Lock ``claim``'s row in this transaction if it is still ours, else None."""
    return (
        await session.execute(
            select(_A)
            .where(
                _A.id == claim.id,
                _A.state == AgendaState.RUNNING,
                _A.attempts == claim.attempts,
                _A.lease_until == claim.lease_until,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


@dataclass(frozen=True)
class TakenRow:
    """The claimed agenda row as a step sees it (read by :func:`take_back`, not an ORM
    object: the hot path writes it back with :func:`close`, never through a flush)."""

    id: int
    seq: int
    step_index: int
    kind: AgendaKind
    due_at: datetime
    attempts: int


@dataclass(frozen=True)
class NextRow:
    """The agenda row a step scheduled, written with the step's trace (``seq``: the
    enrollment's)."""

    step_index: int
    due_at: datetime
    kind: AgendaKind


@dataclass
class TakenEnrollment:
    """The enrollment of a taken row, as plain values. Steps may set ``waiting``; it is
    written with the next agenda row (:func:`sop.engine.lifecycle.schedule_taken` stages it
    in ``scheduled``, the executor writes it with the step's trace) or when the enrollment
    ends (:func:`sop.engine.lifecycle.end_taken`)."""

    id: int
    playbook: str
    version_id: int
    customer_id: int | None
    group_id: int | None
    staff_userid: str | None
    state: EnrollmentState
    waiting: Waiting
    context: dict[str, Any]
    seq: int
    enrolled_at: datetime
    scheduled: NextRow | None = None


@dataclass(frozen=True)
class TakenCustomer:
    """The customer fields the steps and their templates read (what ``build_context`` would
    otherwise load again)."""

    id: int
    external_userid: str | None
    name: str | None
    corp_name: str | None
    custom_fields: dict[str, Any]
    opted_out_at: datetime | None


_E = Enrollment
_C = Customer
_ROW_COLUMNS = (_A.id, _A.seq, _A.step_index, _A.kind, _A.due_at, _A.attempts)
_ENROLLMENT_COLUMNS = (
    _E.id,
    _E.playbook,
    _E.version_id,
    _E.customer_id,
    _E.group_id,
    _E.staff_userid,
    _E.state,
    _E.waiting,
    _E.context,
    _E.seq,
    _E.enrolled_at,
)
_CUSTOMER_COLUMNS = (
    _C.id,
    _C.external_userid,
    _C.name,
    _C.corp_name,
    _C.custom_fields,
    _C.opted_out_at,
)
_SPLIT = (len(_ROW_COLUMNS), len(_ROW_COLUMNS) + len(_ENROLLMENT_COLUMNS))

#: The row (still ours?), its enrollment and customer in one round trip, locking the row and
#: the enrollment (``FOR UPDATE OF``; the customer is only read). A Core select of the
#: columns the steps use, built once: no ORM loading, no identity map, no flush afterwards.
_TAKE_BACK = (
    select(*_ROW_COLUMNS, *_ENROLLMENT_COLUMNS, *_CUSTOMER_COLUMNS)
    .select_from(_A)
    .join(_E, _E.id == _A.enrollment_id)
    .outerjoin(_C, _C.id == _E.customer_id)
    .where(
        _A.id == bindparam("agenda_id"),
        _A.state == AgendaState.RUNNING,
        _A.attempts == bindparam("attempts"),
        _A.lease_until == bindparam("lease_until"),
    )
    .with_for_update(of=[_E.__table__, _A.__table__])
)


async def take_back(
    connection: AsyncConnection, claim: Claim
) -> tuple[TakenRow, TakenEnrollment, TakenCustomer | None] | None:
    """:func:`reacquire` with the row's enrollment (locked too) and customer read in the
    same statement; None if the row is no longer ours. An agenda row cannot outlive its
    enrollment (``ON DELETE CASCADE``), so a row that is ours always has one."""
    params = {"agenda_id": claim.id, "attempts": claim.attempts, "lease_until": claim.lease_until}
    row = (await connection.execute(_TAKE_BACK, params)).first()
    if row is None:
        return None
    at_enrollment, at_customer = _SPLIT
    item = TakenRow(*row[:at_enrollment])
    enrollment = TakenEnrollment(*row[at_enrollment:at_customer])
    customer_values = row[at_customer:]
    customer = None if customer_values[0] is None else TakenCustomer(*customer_values)
    return item, enrollment, customer


def finish(
    item: AgendaItem, state: AgendaState, *, now: datetime, error: str | None = None
) -> None:
    """Close a claimed row (``done``, ``skipped``, ``cancelled``), releasing its lease."""
    item.state = state
    item.lease_until = None
    item.updated_at = now
    if error is not None:
        item.last_error = error


#: :func:`close` as one Core UPDATE, built once (``last_error`` kept unless one is given).
#: Its parameter names are unique among the executor's statements, which PostgreSQL runs
#: together as one statement (see :func:`sop.engine.executor.record`).
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


async def close(
    connection: AsyncConnection,
    agenda_id: int,
    state: AgendaState,
    *,
    now: datetime,
    error: str | None = None,
) -> None:
    """:func:`finish` for a taken row, written at once with a Core UPDATE."""
    params = {"agenda_id": agenda_id, "new_state": state, "now": now, "error": error}
    await connection.execute(CLOSE, params)


def release_for_retry(item: AgendaItem, *, now: datetime, retry_at: datetime, error: str) -> None:
    """Put a row whose step raised back on the agenda at ``retry_at``, keeping the error."""
    item.state = AgendaState.PENDING
    item.lease_until = None
    item.due_at = retry_at
    item.last_error = error
    item.updated_at = now
