"""The per-customer frequency cap, shared by every playbook and campaign.

A marketing message is decided (not yet sent: the outbox sends it later) in the transaction
that records its :class:`~store.models.MarketingTouch`; the cap counts those rows in the
sliding window before ``now``. Counting decisions rather than deliveries keeps the ledger in
the same transaction as the outbox row, so two playbooks deciding at once cannot both slip
under the cap unseen on PostgreSQL (the customer row is locked first) and never on SQLite
(one writer).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sop.engine.taken import ids_in
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

    @classmethod
    def of(cls, count: int, cap: FrequencyCap | None) -> CapCheck:
        """The check for a customer with ``count`` marketing touches in the window."""
        if cap is None:
            return cls(allowed=True, sent_in_window=count, limit=None)
        return cls(allowed=count < cap.messages, sent_in_window=count, limit=cap.messages)


#: The statements of a cap check, built once (their compiled forms are cached); the lock is
#: only sent to PostgreSQL.
_LOCK = (
    select(Customer.id)
    .where(ids_in(Customer.id, "customer_ids", postgres=True))
    .order_by(Customer.id)
    .with_for_update()
)
_COUNT = {
    postgres: select(MarketingTouch.customer_id, func.count(MarketingTouch.id))
    .where(
        ids_in(MarketingTouch.customer_id, "customer_ids", postgres=postgres),
        MarketingTouch.at > bindparam("since"),
        MarketingTouch.at <= bindparam("until"),
    )
    .group_by(MarketingTouch.customer_id)
    for postgres in (False, True)
}


async def lock_and_count(
    connection: AsyncConnection, customer_ids: Collection[int], *, cap: FrequencyCap, now: datetime
) -> dict[int, int]:
    """Marketing touches of each of ``customer_ids`` in ``(now - cap.per, now]``, after
    locking them (in id order, so deciders never wait on each other in a circle).

    The lock serialises deciders on PostgreSQL and the count is a statement of its own:
    under READ COMMITTED its snapshot is taken after the lock, so it sees the touches of a
    decider that held a lock before us. SQLite has no row locks and one writer at a time
    (``BEGIN IMMEDIATE``), so there the lock is not sent. The caller adds the touches its
    own transaction decided but has not written yet."""
    if not customer_ids:
        return {}
    ids = sorted(customer_ids)
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        await connection.execute(_LOCK, {"customer_ids": ids})
    params = {"customer_ids": ids, "since": now - cap.per, "until": now}
    counts = {customer_id: 0 for customer_id in ids}
    for customer_id, count in await connection.execute(_COUNT[postgres], params):
        counts[customer_id] = count
    return counts
