"""Enrolling from what a batch already knows, without a statement: :func:`enroll`'s rules.

:func:`plan` answers as :func:`sop.engine.enroll.enroll` would (playbook enabled, opted-out
customers kept out of marketing, one active enrollment per playbook, the re-entry policy, the
owner when the event names no staff member), from :mod:`sop.engine.facts`; it answers None
when those cannot tell (an audience to query, a customer or owner not read here) and the
caller takes the statement-by-statement path. :func:`defer` hands the enrollment and its first
agenda row to the batch, written with one ``executemany`` each at its flush; an occurrence
key already taken is skipped there (``ON CONFLICT DO NOTHING``), as :func:`enroll` skips it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from sop.engine.catalog import CatalogEntry
from sop.engine.enroll import EnrollResult, Skip, first_due_at
from sop.engine.facts import EnrollmentFacts, Known, PeopleView
from sop.engine.matching import Match
from store.batch import Batch
from store.bulk import Bulk
from store.models import AgendaItem, AgendaKind, AgendaState, Enrollment, EnrollmentState, Waiting


@dataclass(frozen=True)
class Plan:
    """An enrollment to make: the row values, and its first step's due time."""

    entry: CatalogEntry
    found: Match
    staff_userid: str | None
    due_at: datetime


def plan(
    entry: CatalogEntry,
    found: Match,
    *,
    people: PeopleView,
    known: list[Known],
    everyone: bool,
    now: datetime,
    zone_default: str,
) -> Plan | EnrollResult | None:
    """The enrollment ``found`` makes in ``entry``, why none (a skip), or None: ask enroll().

    ``everyone``: the playbook's audience is everyone (else it takes a query)."""
    playbook = entry.playbook
    if not playbook.enabled:
        return EnrollResult(skip=Skip.DISABLED)
    customer = people.known_customer(found.customer_id)
    if customer is None or not everyone:
        return None
    if playbook.marketing and customer.opted_out_at is not None:
        return EnrollResult(skip=Skip.OPTED_OUT, detail=customer.opted_out_at.isoformat())
    mine = [k for k in known if k.playbook == playbook.name]
    if any(k.state == EnrollmentState.ACTIVE for k in mine):
        return EnrollResult(skip=Skip.ACTIVE)
    wait = playbook.reentry.value
    if wait is None and mine:
        return EnrollResult(skip=Skip.REENTRY, detail="never")
    if wait:
        ends = [k.ended_at for k in mine if k.ended_at is not None]
        if ends and now < max(ends) + wait:
            return EnrollResult(skip=Skip.REENTRY, detail=f"until {max(ends) + wait}")
    staff = found.staff_userid
    if staff is None:
        known_owner, staff = people.owner(found.customer_id)
        if not known_owner:
            return None
    due = first_due_at(playbook, now=now, zone_default=zone_default)
    return Plan(entry, found, staff, due)


def defer(batch: Batch, facts: EnrollmentFacts, chosen: Plan, *, now: datetime) -> None:
    """Hand the enrollment to the batch and tell the facts (both undone if the row fails)."""
    entry, found = chosen.entry, chosen.found
    enrollment = {
        "key": found.key,
        "playbook": entry.name,
        "version_id": entry.version_id,
        "customer_id": found.customer_id,
        "group_id": found.group_id,
        "staff_userid": chosen.staff_userid,
        "state": EnrollmentState.ACTIVE,
        "waiting": Waiting.NONE,
        "context": dict(found.context),
        "seq": 1,  # the first agenda row, scheduled with it (lifecycle.schedule's bump)
        "enrolled_at": now,
        "updated_at": now,
    }
    batch.defer(ENROLLMENTS, (enrollment, chosen.due_at))
    facts.add(
        found.customer_id,
        Known(entry.name, entry.version_id, EnrollmentState.ACTIVE, Waiting.NONE, now, None, None),
    )


_ENROLLMENTS = cast(Table, Enrollment.__table__)
_AGENDA = cast(Table, AgendaItem.__table__)


class EnrollmentInsert:
    """The batch's new enrollments, then their first agenda rows: one ``executemany`` each,
    the agenda row finding its enrollment by key (so no id is read back); an occurrence key
    already taken gets neither."""

    order = 55

    def __init__(self) -> None:
        self._statements: dict[str, tuple[Bulk, Bulk]] = {}

    def _built(self, dialect: str) -> tuple[Bulk, Bulk]:
        built = self._statements.get(dialect)
        if built is None:
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            c, a = _ENROLLMENTS.c, _AGENDA.c
            enroll = insert(_ENROLLMENTS).values(
                {name: bindparam(name, type_=c[name].type) for name in _ENROLLMENT_COLUMNS}
            )
            first = select(
                c.id,
                literal(1),
                literal(0),
                literal(AgendaKind.STEP, a.kind.type),
                bindparam("due_at", type_=a.due_at.type),
                literal(AgendaState.PENDING, a.state.type),
                literal(0),
                bindparam("now", type_=a.created_at.type),
                bindparam("now", type_=a.updated_at.type),
            ).where(
                c.key == bindparam("key", type_=c.key.type), c.enrolled_at == bindparam("now_")
            )
            agenda = insert(_AGENDA).from_select(
                [
                    "enrollment_id",
                    "seq",
                    "step_index",
                    "kind",
                    "due_at",
                    "state",
                    "attempts",
                    "created_at",
                    "updated_at",
                ],  # fmt: skip
                first,
            )
            built = self._statements[dialect] = (
                Bulk(enroll.on_conflict_do_nothing(index_elements=["key"])),
                Bulk(agenda.on_conflict_do_nothing(index_elements=["enrollment_id", "seq"])),
            )
        return built

    def write(self, connection: Connection, items: list[tuple[dict[str, Any], datetime]]) -> None:
        enroll, agenda = self._built(connection.dialect.name)
        enroll.execute(connection, [enrollment for enrollment, _ in items])
        agenda.execute(
            connection,
            [
                {
                    "key": e["key"],
                    "due_at": due_at,
                    "now": e["enrolled_at"],
                    "now_": e["enrolled_at"],
                }
                for e, due_at in items
            ],
        )


_ENROLLMENT_COLUMNS = (
    "key", "playbook", "version_id", "customer_id", "group_id", "staff_userid", "state",
    "waiting", "context", "seq", "enrolled_at", "updated_at",
)  # fmt: skip


ENROLLMENTS = EnrollmentInsert()
