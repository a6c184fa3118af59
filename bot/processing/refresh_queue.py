"""Ask for a platform object's details to be fetched, without waiting for the fetch.

Handlers run inside the inbox transaction and must never call the WeCom API; they call
:func:`request_refresh`, which upserts one ``refresh_requests`` row per object, so a burst of
events about one customer costs one fetch. The :class:`~bot.processing.refresher.Refresher`
does the fetching.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Executable, Table, and_, bindparam, case
from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.upsert import dialect_insert
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
    params = {"kind": kind, "key": key, "due": now + timedelta(seconds=delay), "now": now}
    deferred = session.info.get(_DEFERRED)
    if isinstance(deferred, DeferredRefreshes):
        deferred.add(params)
        return
    await session.execute(_upsert_statement(session), params)


_DEFERRED = "scrm.refresh_queue.deferred"


class DeferredRefreshes:
    """The refresh requests of a transaction, written together at its end in (kind, key) order.

    Every event about a staff member asks for that member's refresh, so processors on several
    processes upsert the same few ``refresh_requests`` rows all the time; written as they come,
    two batches lock them in opposite orders and deadlock. Written last and sorted, they never
    do, and a burst about one object is one upsert. :meth:`mark` and :meth:`rollback_to` drop
    the requests of a row whose SAVEPOINT was rolled back.
    """

    def __init__(self) -> None:
        self._requests: list[dict[str, Any]] = []

    def add(self, params: dict[str, Any]) -> None:
        self._requests.append(params)

    def mark(self) -> int:
        return len(self._requests)

    def rollback_to(self, mark: int) -> None:
        del self._requests[mark:]

    async def flush(self, session: AsyncSession) -> None:
        earliest: dict[tuple[str, str], dict[str, Any]] = {}
        for request in self._requests:
            key = (request["kind"], request["key"])
            known = earliest.get(key)
            if known is None or request["due"] < known["due"]:
                earliest[key] = request
        self._requests.clear()
        if earliest:
            rows = [earliest[key] for key in sorted(earliest)]
            await session.execute(_upsert_statement(session), rows)


def defer_refreshes(session: AsyncSession) -> DeferredRefreshes:
    """Collect ``session``'s refresh requests until :meth:`DeferredRefreshes.flush`."""
    deferred = DeferredRefreshes()
    session.info[_DEFERRED] = deferred
    return deferred


_UPSERTS: dict[str, Executable] = {}


def _upsert_statement(session: AsyncSession) -> Executable:
    """The upsert, built once per dialect with bound parameters.

    Plain Core, not ORM-enabled (nothing here touches loaded objects), and reused: building
    and cache-keying the statement, and the ORM bulk-DML path, cost several times the
    statement itself on SQLite.
    """
    dialect = session.get_bind().dialect.name
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        table = cast(Table, RefreshRequest.__table__)
        due = bindparam("due", type_=table.c.due_at.type)
        now = bindparam("now", type_=table.c.requested_at.type)
        insert = dialect_insert(session, table).values(
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
