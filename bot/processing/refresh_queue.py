"""Ask for a platform object's details to be fetched, without waiting for the fetch.

Handlers run inside the inbox transaction and must never call the WeCom API; they call
:func:`request_refresh`, which upserts one ``refresh_requests`` row per object, so a burst of
events about one customer costs one fetch. The :class:`~bot.processing.refresher.Refresher`
does the fetching.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, case
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
    due = now + timedelta(seconds=delay)
    table = RefreshRequest.__table__
    stmt = dialect_insert(session, RefreshRequest).values(
        kind=kind, key=key, due_at=due, attempts=0, requested_at=now, version=1
    )
    stmt = stmt.on_conflict_do_update(
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
    await session.execute(stmt)
