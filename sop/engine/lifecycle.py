"""The two moves every part of the engine makes on an enrollment: schedule its next
execution, and end it.

Kept in one place so the invariants hold whoever moves an enrollment (a step, a reply, an
exit criterion, an opt-out, an operator): each execution gets the next ``seq`` (unique per
enrollment, so a step is never scheduled twice by two racing transactions), and ending an
enrollment cancels whatever it still had on the agenda.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    AgendaItem,
    AgendaKind,
    AgendaState,
    Enrollment,
    EnrollmentState,
    Waiting,
)


def schedule(
    session: AsyncSession,
    enrollment: Enrollment,
    *,
    step_index: int,
    due_at: datetime,
    now: datetime,
    kind: AgendaKind = AgendaKind.STEP,
) -> AgendaItem:
    """Put the next execution of ``enrollment`` on the agenda (flushed with the session)."""
    enrollment.seq += 1
    enrollment.updated_at = now
    item = AgendaItem(
        enrollment_id=enrollment.id,
        seq=enrollment.seq,
        step_index=step_index,
        kind=kind,
        due_at=due_at,
        state=AgendaState.PENDING,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(item)
    return item


async def cancel_pending(
    session: AsyncSession, enrollment_id: int, *, now: datetime, kind: AgendaKind | None = None
) -> int:
    """Cancel the enrollment's pending agenda rows (of one ``kind``, or all); how many."""
    statement = (
        update(AgendaItem)
        .where(AgendaItem.enrollment_id == enrollment_id)
        .where(AgendaItem.state == AgendaState.PENDING)
        .values(state=AgendaState.CANCELLED, updated_at=now)
    )
    if kind is not None:
        statement = statement.where(AgendaItem.kind == kind)
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def end(
    session: AsyncSession,
    enrollment: Enrollment,
    *,
    state: EnrollmentState,
    reason: str,
    now: datetime,
) -> None:
    """End ``enrollment`` (completed, exited, cancelled, failed) and clear its agenda."""
    if enrollment.state != EnrollmentState.ACTIVE:
        return
    enrollment.state = state
    enrollment.waiting = Waiting.NONE
    enrollment.ended_at = now
    enrollment.end_reason = reason
    enrollment.updated_at = now
    await cancel_pending(session, enrollment.id, now=now)
