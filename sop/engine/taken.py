"""Claimed agenda rows taken with their enrollments and customers, as plain values.

The engine reads what its steps need in one Core select per transaction (no ORM loading, no
identity map, no flush afterwards) and writes it back with prebuilt statements
(:mod:`sop.engine.writes`). :func:`take` also locks the enrollments, so a reply or an exit
handled at the same moment waits for the step (or the step for it), never both at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from store.models import (
    AgendaItem,
    AgendaKind,
    AgendaState,
    Customer,
    Enrollment,
    EnrollmentState,
    Waiting,
)

_A, _E, _C = AgendaItem, Enrollment, Customer


def ids_in(column: Any, name: str, *, postgres: bool, of: Any = BigInteger) -> Any:
    """``column`` among the values (ids, of type ``of``) bound as ``name``: ``= ANY(array)``
    on PostgreSQL (one statement text, prepared once per connection, for any number of
    values), else an expanding ``IN``."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(of)))
    return column.in_(bindparam(name, expanding=True))


@dataclass(frozen=True)
class TakenRow:
    """A claimed agenda row as a step sees it. ``attempts``: the failed attempts before
    this one."""

    id: int
    seq: int
    step_index: int
    kind: AgendaKind
    due_at: datetime
    attempts: int

    @property
    def attempt(self) -> int:
        """Which attempt this run is (1 unless the step raised before)."""
        return self.attempts + 1


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
    """The customer fields the steps and their templates read."""

    id: int
    external_userid: str | None
    name: str | None
    corp_name: str | None
    custom_fields: dict[str, Any]
    opted_out_at: datetime | None


Taken = tuple[TakenRow, TakenEnrollment, TakenCustomer | None]

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


def due(now: Any) -> Any:
    """A row the engine may run at ``now``: pending and due."""
    return (_A.state == AgendaState.PENDING) & (_A.due_at <= now)


def taking(rows: Any = _A) -> Any:
    """Rows (``rows``: the agenda, or a join that leads to it), their enrollments and
    customers in one round trip, locking the rows and the enrollments (an enrollment a reply
    is moving on is waited for, and the row is then read as that transaction left it)."""
    return (
        select(*_ROW_COLUMNS, *_ENROLLMENT_COLUMNS, *_CUSTOMER_COLUMNS)
        .select_from(rows)
        .join(_E, _E.id == _A.enrollment_id)
        .outerjoin(_C, _C.id == _E.customer_id)
        .with_for_update(of=[_E.__table__, _A.__table__])
    )


_TAKE = {
    postgres: taking().where(ids_in(_A.id, "ids", postgres=postgres), due(bindparam("now")))
    for postgres in (False, True)
}


def taken_rows(rows: Iterable[Any]) -> list[Taken]:
    """The rows of a :func:`taking` statement as plain values."""
    at_enrollment, at_customer = _SPLIT
    taken: list[Taken] = []
    for row in rows:
        item = TakenRow(*row[:at_enrollment])
        enrollment = TakenEnrollment(*row[at_enrollment:at_customer])
        customer_values = row[at_customer:]
        customer = None if customer_values[0] is None else TakenCustomer(*customer_values)
        taken.append((item, enrollment, customer))
    return taken


async def take(connection: AsyncConnection, ids: Sequence[int], *, now: datetime) -> list[Taken]:
    """The rows of ``ids`` that are still due, with their enrollments and customers, in the
    order of ``ids``. An agenda row cannot outlive its enrollment (``ON DELETE CASCADE``)."""
    if not ids:
        return []
    statement = _TAKE[connection.dialect.name == "postgresql"]
    found = await connection.execute(statement, {"ids": list(ids), "now": now})
    by_id = {row[0].id: row for row in taken_rows(found)}
    return [by_id[agenda_id] for agenda_id in ids if agenda_id in by_id]
