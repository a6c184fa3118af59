"""The per-customer frequency cap, shared by every playbook and campaign.

A marketing message is decided (not yet sent: the outbox sends it later) in the transaction
that records its :class:`~store.models.MarketingTouch`; the cap counts those rows in the
sliding window before ``now``. Counting decisions rather than deliveries keeps the ledger in
the same transaction as the outbox row, so two playbooks deciding at once cannot both slip
under the cap unseen on PostgreSQL (the customer row is locked first) and never on SQLite
(one writer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sop.settings import FrequencyCap
from store.models import Customer, MarketingTouch


@dataclass(frozen=True)
class CapCheck:
    """Whether one more marketing message fits, and the count that decided it."""

    allowed: bool
    sent_in_window: int
    limit: int | None

    def reason(self, cap: FrequencyCap | None) -> str:
        if self.allowed or cap is None:
            return ""
        return (
            f"frequency cap: {self.sent_in_window} marketing messages in the last {cap.per}"
            f" (at most {cap.messages}, settings sop.frequency_cap)"
        )


#: The statements of a cap check, built once (their compiled forms are cached).
_COUNT = select(func.count(MarketingTouch.id)).where(
    MarketingTouch.customer_id == bindparam("customer_id"),
    MarketingTouch.at > bindparam("since"),
    MarketingTouch.at <= bindparam("until"),
)
_LOCK = select(Customer.id).where(Customer.id == bindparam("customer_id")).with_for_update()
_TOUCH = insert(MarketingTouch)


async def touches_in_window(
    connection: AsyncConnection, customer_id: int, *, cap: FrequencyCap, now: datetime
) -> int:
    """Marketing touches of ``customer_id`` in ``(now - cap.per, now]``."""
    params = {"customer_id": customer_id, "since": now - cap.per, "until": now}
    return int((await connection.execute(_COUNT, params)).scalar_one())


async def check_cap(
    connection: AsyncConnection, customer_id: int, *, cap: FrequencyCap | None, now: datetime
) -> CapCheck:
    """Lock the customer (serialises deciders on PostgreSQL), then count the window in a
    statement of its own: under READ COMMITTED its snapshot is taken after the lock, so it
    sees the touches of the decider that held the lock before us. SQLite has no row locks
    and one writer at a time (``BEGIN IMMEDIATE``), so there the lock is not sent."""
    if cap is None:
        return CapCheck(allowed=True, sent_in_window=0, limit=None)
    if connection.dialect.name == "postgresql":
        await connection.execute(_LOCK, {"customer_id": customer_id})
    count = await touches_in_window(connection, customer_id, cap=cap, now=now)
    return CapCheck(allowed=count < cap.messages, sent_in_window=count, limit=cap.messages)


async def record_touch(
    connection: AsyncConnection, customer_id: int, *, source: str, now: datetime
) -> None:
    """Write the ledger row for a marketing message decided now, in the caller's transaction
    (a Core insert: nothing in the step reads the row back)."""
    await connection.execute(
        _TOUCH, {"customer_id": customer_id, "at": now, "source": source[:200]}
    )
