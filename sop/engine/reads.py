"""What the steps of one engine transaction read, read once for all of them.

A send or nudge renders its message with the customer's relationships and tags, and a
marketing send counts the customer's touches under the frequency cap. Read one statement
per step, those reads were most of a send step's cost; here each kind is read for every
customer of the transaction in one statement, the first time a step asks (a transaction of
timeouts reads nothing). What the transaction itself decided meanwhile (touches not yet
written) is added by the caller from :class:`sop.engine.writes.TransactionWrites`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from sop.engine.frequency import lock_and_count
from sop.rendering.context import CustomerReads, read_customers
from sop.settings import FrequencyCap


class TransactionReads:
    """Lazily read, per transaction: customers' context reads and capped touch counts.

    ``customer_ids``: the customers of the transaction's rows; ``capped``: those a
    marketing send of the transaction may count against the cap (locked on PostgreSQL
    when first counted)."""

    def __init__(
        self, connection: AsyncConnection, customer_ids: Collection[int], capped: Collection[int]
    ) -> None:
        self._connection = connection
        self._customer_ids = set(customer_ids)
        self._capped = set(capped)
        self._customers: dict[int, CustomerReads] = {}
        self._touches: dict[int, int] = {}

    async def customer(self, customer_id: int) -> CustomerReads:
        """``customer_id``'s relationships and tags (all the transaction's, read at once)."""
        if customer_id not in self._customers:
            wanted = (self._customer_ids - self._customers.keys()) | {customer_id}
            self._customers |= await read_customers(self._connection, wanted)
        return self._customers[customer_id]

    async def touches(self, customer_id: int, *, cap: FrequencyCap, now: datetime) -> int:
        """Marketing touches of ``customer_id`` in the cap's window, as committed when this
        transaction first counted (the customers are locked from then on)."""
        if customer_id not in self._touches:
            wanted = (self._capped - self._touches.keys()) | {customer_id}
            self._touches |= await lock_and_count(self._connection, wanted, cap=cap, now=now)
        return self._touches[customer_id]
