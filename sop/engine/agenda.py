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

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AgendaItem, AgendaState, Customer, Enrollment

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


#: The row (still ours?), its enrollment and customer in one round trip, locking the row and
#: the enrollment (``FOR UPDATE OF``; the customer is only read). Built once: SQLAlchemy
#: caches its compiled form, so a step pays for no statement building here.
_TAKE_BACK = (
    select(_A, Enrollment, Customer)
    .join(Enrollment, Enrollment.id == _A.enrollment_id)
    .outerjoin(Customer, Customer.id == Enrollment.customer_id)
    .where(
        _A.id == bindparam("agenda_id"),
        _A.state == AgendaState.RUNNING,
        _A.attempts == bindparam("attempts"),
        _A.lease_until == bindparam("lease_until"),
    )
    .with_for_update(of=[Enrollment, _A])
    .execution_options(populate_existing=True)
)


async def take_back(
    session: AsyncSession, claim: Claim
) -> tuple[AgendaItem, Enrollment, Customer | None] | None:
    """:func:`reacquire` with the row's enrollment (locked too) and customer loaded in the
    same statement; None if the row is no longer ours. An agenda row cannot outlive its
    enrollment (``ON DELETE CASCADE``), so a row that is ours always has one."""
    params = {"agenda_id": claim.id, "attempts": claim.attempts, "lease_until": claim.lease_until}
    row = (await session.execute(_TAKE_BACK, params)).one_or_none()
    if row is None:
        return None
    item, enrollment, customer = row
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


#: :func:`close` as one Core UPDATE, built once.
_CLOSE = (
    update(_A)
    .where(_A.id == bindparam("agenda_id"))
    .values(state=bindparam("state"), lease_until=None, updated_at=bindparam("now"))
)


async def close(
    session: AsyncSession, item: AgendaItem, state: AgendaState, *, now: datetime
) -> None:
    """:func:`finish` without an error, written at once with a Core UPDATE: the hot path's
    way, which leaves the ORM object untouched and so gives the session's flush nothing to do
    for the row (``item`` still says ``running`` in memory; nothing reads it after this)."""
    connection = await session.connection()
    await connection.execute(_CLOSE, {"agenda_id": item.id, "state": state, "now": now})


def release_for_retry(item: AgendaItem, *, now: datetime, retry_at: datetime, error: str) -> None:
    """Put a row whose step raised back on the agenda at ``retry_at``, keeping the error."""
    item.state = AgendaState.PENDING
    item.lease_until = None
    item.due_at = retry_at
    item.last_error = error
    item.updated_at = now
