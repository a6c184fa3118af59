"""The two moves every part of the engine makes on an enrollment: schedule its next
execution, and end it.

Kept in one place so the invariants hold whoever moves an enrollment (a step, a reply, an
exit criterion, an opt-out, an operator): each execution gets the next ``seq`` (unique per
enrollment, so a step is never scheduled twice by two racing transactions), and ending an
enrollment cancels whatever it still had on the agenda.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from sop.engine.taken import NextRow, TakenEnrollment
from store.models import (
    AgendaItem,
    AgendaKind,
    AgendaState,
    Enrollment,
    EnrollmentState,
    Waiting,
)

if TYPE_CHECKING:
    from sop.engine.writes import TransactionWrites


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


#: The hot path's moves as Core statements, built once: the executor holds the enrollment
#: as plain values (:class:`TakenEnrollment`), so nothing is left for a unit-of-work flush;
#: :class:`sop.engine.writes.TransactionWrites` runs each with the rows of a transaction.
BUMP = (
    update(Enrollment)
    .where(Enrollment.id == bindparam("of_enrollment"))
    .values(
        seq=bindparam("next_seq"), waiting=bindparam("now_waiting"), updated_at=bindparam("now")
    )
)
NEXT = (
    insert(AgendaItem)
    .inline()
    .values(
        enrollment_id=bindparam("of_enrollment"),
        seq=bindparam("next_seq"),
        step_index=bindparam("next_step_index"),
        kind=bindparam("next_kind"),
        due_at=bindparam("next_due_at"),
        state=AgendaState.PENDING,
        attempts=0,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
)
END = (
    update(Enrollment)
    .where(Enrollment.id == bindparam("of_enrollment"))
    .where(Enrollment.state == EnrollmentState.ACTIVE)
    .values(
        state=bindparam("end_state"),
        waiting=Waiting.NONE,
        ended_at=bindparam("now"),
        end_reason=bindparam("reason"),
        updated_at=bindparam("now"),
    )
)
CANCEL_ALL = (
    update(AgendaItem)
    .where(AgendaItem.enrollment_id == bindparam("of_enrollment"))
    .where(AgendaItem.state == AgendaState.PENDING)
    .values(state=AgendaState.CANCELLED, updated_at=bindparam("now"))
)


def schedule_taken(
    enrollment: TakenEnrollment,
    *,
    step_index: int,
    due_at: datetime,
    kind: AgendaKind = AgendaKind.STEP,
) -> None:
    """:func:`schedule` for an enrollment the executor took back (locked in this
    transaction): the next ``seq`` is taken now, and the row (with the enrollment's new
    ``seq`` and ``waiting``) is written with the step's trace, by the executor."""
    enrollment.seq += 1
    enrollment.scheduled = NextRow(step_index=step_index, due_at=due_at, kind=kind)


def scheduled_params(enrollment: TakenEnrollment) -> dict[str, Any]:
    """The parameters of :data:`BUMP` and :data:`NEXT` for the row ``enrollment`` has
    scheduled (:func:`schedule_taken`)."""
    row = enrollment.scheduled
    assert row is not None
    return {
        "of_enrollment": enrollment.id,
        "next_seq": enrollment.seq,
        "now_waiting": enrollment.waiting,
        "next_step_index": row.step_index,
        "next_kind": row.kind,
        "next_due_at": row.due_at,
    }


def end_taken(
    writes: TransactionWrites,
    enrollment: TakenEnrollment,
    *,
    state: EnrollmentState,
    reason: str,
    now: datetime,
) -> None:
    """:func:`end` for an enrollment the executor took back, written with the step (a row
    it had scheduled in this step is dropped: an ended enrollment has nothing on the
    agenda)."""
    if enrollment.state != EnrollmentState.ACTIVE:
        return
    enrollment.state = state
    enrollment.waiting = Waiting.NONE
    enrollment.scheduled = None
    writes.end(enrollment.id, state, reason=reason, now=now)
