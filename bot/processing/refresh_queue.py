"""Ask for a platform object's details to be fetched, without waiting for the fetch.

Handlers run inside the inbox transaction and must never call the WeCom API; they call
:func:`request_refresh`, which upserts one ``refresh_requests`` row per object, so a burst of
events about one customer costs one fetch. The :class:`~bot.processing.refresher.Refresher`
does the fetching.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from sqlalchemy import Executable, Table, and_, bindparam, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sop.clock import Clock
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
    if kind not in KINDS:
        raise ValueError(f"unknown refresh kind {kind!r}: use one of {', '.join(KINDS)}")
    now = clock.now()
    due = now + timedelta(seconds=delay)
    await session.execute(
        upsert_statement(session.get_bind().dialect.name),
        {"kind": kind, "key": key, "due": due, "now": now},
    )


_UPSERTS: dict[str, Executable] = {}


def upsert_statement(dialect: str) -> Executable:
    """The upsert, built once per dialect with bound parameters (``kind``, ``key``, ``due``,
    ``now``); the inbox processor runs it for a whole batch (:mod:`bot.processing.deferred`).

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
