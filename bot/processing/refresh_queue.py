"""Ask for a platform object's details to be fetched, without waiting for the fetch.

Handlers run inside the inbox transaction and must never call the WeCom API; they call
:func:`request_refresh` (``HandlerContext.refresh``), which upserts one ``refresh_requests``
row per object, so a burst of events about one customer costs one fetch. The
:class:`~bot.processing.refresher.Refresher` does the fetching.

Inside an inbox batch (:mod:`store.batch`) the requests wait for the batch's end and are
written together (:class:`RefreshUpsert`): a request of a row that fails goes with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Executable, Table, and_, bindparam, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sop.clock import Clock
from store.batch import Batch
from store.bulk import Bulk
from store.models import RefreshRequest

#: The kinds the refresher knows, and what their keys are.
CUSTOMER = "customer"  # external_userid
GROUP = "group"  # chat_id
STAFF = "staff"  # userid
TAG = "tag"  # ALL_TAGS: the whole corp tag library
KINDS = (CUSTOMER, GROUP, STAFF, TAG)
ALL_TAGS = "*"


async def request_refresh(
    session: AsyncSession, kind: str, key: str, clock: Clock, delay: float = 0
) -> None:
    """Make ``kind``/``key`` due ``delay`` seconds from now (or keep an earlier due time).

    A request already backing off after failures keeps its backoff: a new event does not
    make a failing API call more likely to succeed. ``version`` is bumped so a fetch already
    in flight does not drop the request when it finishes (it may have read stale data).
    """
    item = refresh_item(kind, key, clock.now(), delay)
    batch = Batch.of(session)
    if batch is not None:
        batch.defer(REFRESH, item)
        return
    await session.execute(upsert_statement(session.get_bind().dialect.name), item)


def refresh_item(kind: str, key: str, now: datetime, delay: float = 0) -> dict[str, Any]:
    """One request, as :func:`upsert_statement` takes it."""
    if kind not in KINDS:
        raise ValueError(f"unknown refresh kind {kind!r}: use one of {', '.join(KINDS)}")
    return {"kind": kind, "key": key, "due": now + timedelta(seconds=delay), "now": now}


class RefreshUpsert:
    """A batch's refresh requests, written at its end: once per object (the earliest due time,
    the latest request: what the requests one by one would leave, ``version`` bumped once), in
    (kind, key) order. Every event about a staff member asks for that member's refresh, so
    processors on several processes upsert the same few rows all the time; written as they
    came, two batches would lock them in opposite orders and deadlock."""

    order = 60
    at_end = True  # not at a row's savepoint: see store.batch.Deferred

    def __init__(self) -> None:
        self._statements: dict[str, Bulk] = {}

    def write(self, connection: Connection, items: list[dict[str, Any]]) -> None:
        dialect = connection.dialect.name
        statement = self._statements.get(dialect)
        if statement is None:
            statement = self._statements[dialect] = Bulk(upsert_statement(dialect))
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for item in items:
            key = (item["kind"], item["key"])
            found = merged.get(key)
            if found is None:
                merged[key] = dict(item)
            else:
                found["due"] = min(found["due"], item["due"])
                found["now"] = max(found["now"], item["now"])
        statement.execute(connection, [merged[key] for key in sorted(merged)])


REFRESH = RefreshUpsert()

_UPSERTS: dict[str, Executable] = {}


def upsert_statement(dialect: str) -> Executable:
    """The upsert, built once per dialect with bound parameters (``kind``, ``key``, ``due``,
    ``now``).

    Plain Core, not ORM-enabled (nothing here touches loaded objects), and reused: building
    and cache-keying the statement, and the ORM bulk-DML path, cost several times the
    statement itself on SQLite.
    """
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        table = cast(Table, RefreshRequest.__table__)
        due = bindparam("due", type_=table.c.due_at.type)
        now = bindparam("now", type_=table.c.requested_at.type)
        dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        insert = dialect_insert(table).values(
            kind=bindparam("kind", type_=table.c.kind.type),
            key=bindparam("key", type_=table.c.key.type),
            due_at=due,
            attempts=0,
            requested_at=now,
            version=1,
        )
        stmt = _UPSERTS[dialect] = insert.on_conflict_do_update(
            index_elements=["kind", "key"],
            set_={
                "due_at": case(
                    (and_(table.c.attempts == 0, table.c.due_at > due), due),
                    else_=table.c.due_at,
                ),
                "requested_at": now,
                "version": table.c.version + 1,
            },
        )
    return stmt
