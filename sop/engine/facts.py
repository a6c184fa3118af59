"""What the engine knows about a batch's customers before their events arrive, so that most
events are judged without a statement.

When the inbox processor prepares a batch (:mod:`store.batch`), the engine reads the
enrollments of every customer in it (one statement; on PostgreSQL after taking each
customer's enrollment lock, in customer order, which :func:`sop.engine.enroll.enroll` takes
too) and the playbook versions they run. The bot puts its own view of the batch's people in
``Batch.state[PEOPLE]`` (:class:`PeopleView`: opt-out, owner, group names, kept current by its
handlers). :mod:`sop.engine.subscribe` judges an event from these alone when it can, and
falls back to the statement-by-statement path when it cannot (an opt-out word, an exit, a
goal, a reply, an audience query, anything not read). Enrollments made from them are added
here with their undo, so the rows after see them; a statement of a row's own that writes the
enrollments table makes all of it untrusted for the rest of the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select, text

from sop.playbooks.model import Playbook
from store.batch import Batch
from store.bulk import in_list
from store.models import Enrollment, EnrollmentState, Waiting

#: ``Batch.state`` keys: the bot's view of the batch's people, and the enrollment facts.
PEOPLE = "sop.people"
FACTS = "sop.enrollments"


class CustomerView(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def opted_out_at(self) -> datetime | None: ...


class GroupView(Protocol):
    @property
    def name(self) -> str | None: ...


class PeopleView(Protocol):
    """The batch's customers and groups as its handlers left them (None: not known here)."""

    def known_customer(self, customer_id: int) -> CustomerView | None: ...
    def known_group(self, group_id: int) -> GroupView | None: ...
    def owner(self, customer_id: int) -> tuple[bool, str | None]: ...


@dataclass(frozen=True)
class Known:
    """One enrollment of a customer, as the reactions to an event look at it."""

    playbook: str
    version_id: int
    state: EnrollmentState
    waiting: Waiting
    enrolled_at: datetime
    ended_at: datetime | None
    goal_met_at: datetime | None


def enroll_lock_id(customer_id: int) -> int:
    """The advisory lock that makes enrollments of one customer take turns (PostgreSQL)."""
    digest = hashlib.sha256(f"enroll:c{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_E = Enrollment.__table__.c
_READ = {
    postgres: select(
        _E.customer_id,
        _E.playbook,
        _E.version_id,
        _E.state,
        _E.waiting,
        _E.enrolled_at,
        _E.ended_at,
        _E.goal_met_at,
    ).where(in_list(_E.customer_id, "ids", postgres=postgres))
    for postgres in (False, True)
}
_LOCK = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS BIGINT[])) AS k")


class EnrollmentFacts:
    """The enrollments of the batch's customers and the playbook versions they run."""

    def __init__(
        self,
        batch: Batch,
        known: dict[int, list[Known]],
        versions: dict[int, Playbook],
    ) -> None:
        self._batch = batch
        self._known = known
        self.versions = versions
        self._generation = batch.generation(Enrollment.__tablename__)

    @staticmethod
    def of_batch(batch: Batch) -> EnrollmentFacts | None:
        found = batch.state.get(FACTS)
        return found if isinstance(found, EnrollmentFacts) else None

    def trusted(self) -> bool:
        """No statement of a row's own has written enrollments since they were read."""
        return self._batch.generation(Enrollment.__tablename__) == self._generation

    def of(self, customer_id: int) -> list[Known] | None:
        """The customer's enrollments, or None when they were not read or are not trusted."""
        if not self.trusted():
            return None
        return self._known.get(customer_id)

    async def reread(self, customer_id: int) -> None:
        """Read the customer's enrollments again (in the row's savepoint) after the engine's
        own statements changed them, and trust the facts again: the caller knows no other
        enrollment was written since :meth:`trusted`. Should the row fail, the customer's
        enrollments go back to what they were, in the database and here."""
        fresh = await read_facts(self._batch, [customer_id], lock=False)
        previous = self._known.get(customer_id)
        self._known[customer_id] = fresh[customer_id]
        self._generation = self._batch.generation(Enrollment.__tablename__)

        def undo() -> None:
            if previous is None:
                self._known.pop(customer_id, None)
            else:
                self._known[customer_id] = previous

        self._batch.on_undo(undo)

    def add(self, customer_id: int, known: Known) -> None:
        """A new enrollment of the current row (taken back if the row fails)."""
        mine = self._known.setdefault(customer_id, [])
        mine.append(known)
        self._batch.on_undo(lambda: mine.remove(known))


async def read_facts(
    batch: Batch, customer_ids: Sequence[int], *, lock: bool
) -> dict[int, list[Known]]:
    """The customers' enrollments (all of them: re-entry looks at ended ones); with ``lock``
    (PostgreSQL), each customer's enrollment lock first, in customer order."""
    return await batch.run_own(_read, sorted(customer_ids), lock)  # type: ignore[no-any-return]


def _read(connection: Connection, ids: list[int], lock: bool) -> dict[int, list[Known]]:
    postgres = connection.dialect.name == "postgresql"
    if lock and postgres:
        connection.execute(_LOCK, {"keys": [enroll_lock_id(cid) for cid in ids]})
    known: dict[int, list[Known]] = {cid: [] for cid in ids}
    rows: Any = connection.execute(_READ[postgres], {"ids": ids})
    for row in rows:
        known[row.customer_id].append(Known(*row[1:]))
    return known
