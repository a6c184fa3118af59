"""Settling uncertain rows: asking the platform what became of a send whose answer was lost.

A customer message is ``uncertain`` when its request may have reached the platform but no
answer came back (the sender crashed with it in flight, the connection broke, a timeout). It
is never sent again blindly. Where the platform can tell, the channel implements
:class:`~sop.delivery.channel.Settling` and the settler asks it, once ``settle_at`` has
come:

- ``sent``: the platform has it; the row is ``sent`` (and lands on the timeline), the
  platform's answer kept in ``platform_ids["settled"]``;
- ``not sent``: the platform never got it; the row is ``pending`` again and goes out;
- ``failed``: the platform refuses it, as it refused the first try; the row is ``failed``;
- ``unknown``: the platform cannot tell; the row stays ``uncertain`` with the reason and
  ``settle_at`` cleared: a person checks, then ``scrm outbox resend``;
- ``retry``: the question itself failed; asked again later (half the row's age, 5 s to 1 h).

Several senders may settle side by side: a row is taken with a short lease (its ``settle_at``
moves on, under ``FOR UPDATE SKIP LOCKED``) and each answer is written only if the row still
carries that lease, so an operator's resend meanwhile wins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sop.clock import Clock
from sop.delivery.channel import Channel, OutboxMessage, Settlement, Settling, Verdict
from sop.delivery.claims import OUTBOX, ids_in, is_postgres
from sop.delivery.link import Link
from sop.delivery.outcomes import RESEND_HINT, timeline_entry
from sop.delivery.writes import TIMELINE
from store.models import OutboxState

log = logging.getLogger(__name__)
_C = OUTBOX.c
SHORTEST_WAIT = timedelta(seconds=5)
LONGEST_WAIT = timedelta(hours=1)


@dataclass(frozen=True)
class Unsettled:
    """An uncertain row taken to be settled."""

    message: OutboxMessage
    attempted_at: datetime
    platform_ids: Mapping[str, Any]


def retry_wait(attempted_at: datetime, now: datetime) -> timedelta:
    """How long to wait before asking again: half the row's age, 5 s to 1 h."""
    return min(max((now - attempted_at) / 2, SHORTEST_WAIT), LONGEST_WAIT)


_TAKE = (
    select(
        _C.id,
        _C.idempotency_key,
        _C.channel,
        _C.recipient,
        _C.payload,
        _C.attempts,
        _C.due_at,
        _C.expires_at,
        _C.customer_id,
        _C.last_errcode,
        _C.attempted_at,
        _C.platform_ids,
    )
    .where(
        _C.state == OutboxState.UNCERTAIN,
        _C.settle_at <= bindparam("now"),
        _C.attempted_at.is_not(None),
        _C.channel.in_(bindparam("channels", expanding=True)),
    )
    .order_by(_C.settle_at, _C.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_LEASE = {
    postgres: update(OUTBOX)
    .where(ids_in("ids", postgres=postgres))
    .values(settle_at=bindparam("b_lease_until"))
    for postgres in (False, True)
}
_WRITE = (
    update(OUTBOX)
    .where(
        _C.id == bindparam("b_id"),
        _C.state == OutboxState.UNCERTAIN,
        _C.settle_at == bindparam("b_lease"),
    )
    .returning(_C.id)
)


async def take_unsettled(
    connection: AsyncConnection,
    now: datetime,
    channels: Sequence[str],
    limit: int,
    lease_until: datetime,
) -> list[Unsettled]:
    """Lock up to ``limit`` uncertain rows due to be settled and lease them."""
    found = await connection.execute(
        _TAKE, {"now": now, "channels": list(channels), "limit": limit}
    )
    rows = [
        Unsettled(
            OutboxMessage(row_id, key, channel, recipient, payload, attempts, due_at, expires,
                          customer_id, errcode),
            attempted_at,
            platform_ids or {},
        )
        for (row_id, key, channel, recipient, payload, attempts, due_at, expires, customer_id,
             errcode, attempted_at, platform_ids) in found.all()
    ]  # fmt: skip
    if rows:
        ids = [row.message.id for row in rows]
        statement = _LEASE[is_postgres(connection)]
        await connection.execute(statement, {"ids": ids, "b_lease_until": lease_until})
    return rows


@dataclass(frozen=True)
class Answered:
    row: Unsettled
    settlement: Settlement
    summary: str
    customer_facing: bool


async def write_settlements(
    connection: AsyncConnection,
    answered: Sequence[Answered],
    *,
    now: datetime,
    lease_until: datetime,
) -> dict[int, Verdict]:
    """Record each answer on its row if the row still carries our lease: the verdicts written."""
    written: dict[int, Verdict] = {}
    timeline: list[dict[str, Any]] = []
    for item in answered:
        message, settlement = item.row.message, item.settlement
        values = _values(item, now)
        values |= {"b_id": message.id, "b_lease": lease_until}
        found = await connection.execute(_WRITE, values)
        if found.scalar_one_or_none() is None:
            continue
        written[message.id] = settlement.verdict
        if settlement.verdict is Verdict.SENT and message.customer_id is not None:
            ids = values["platform_ids"]
            timeline.append(timeline_entry(message, item.summary, ids, item.customer_facing, now))
    if timeline:
        await connection.execute(insert(TIMELINE), timeline)
    return written


def _values(item: Answered, now: datetime) -> dict[str, Any]:
    row, settlement = item.row, item.settlement
    verdict, reason = settlement.verdict, settlement.reason
    if verdict is Verdict.SENT:
        ids = {**row.platform_ids, **settlement.platform_ids, "settled": reason}
        return {
            "state": OutboxState.SENT,
            "sent_at": now,
            "settle_at": None,
            "platform_ids": ids,
            "last_errcode": None,
            "last_error": None,
            "updated_at": now,
        }
    if verdict is Verdict.NOT_SENT:
        return {
            "state": OutboxState.PENDING,
            "due_at": now,
            "attempted_at": None,
            "settle_at": None,
            "last_errcode": settlement.errcode,
            "last_error": f"not delivered, sending again: {reason}",
            "updated_at": now,
        }
    if verdict is Verdict.FAILED:
        return {
            "state": OutboxState.FAILED,
            "settle_at": None,
            "last_errcode": settlement.errcode,
            "last_error": reason,
            "updated_at": now,
        }
    if verdict is Verdict.UNKNOWN:
        hint = RESEND_HINT.format(id=row.message.id)
        return {
            "settle_at": None,
            "last_errcode": settlement.errcode,
            "last_error": f"{reason}; {hint}",
            "updated_at": now,
        }
    return {
        "settle_at": now + retry_wait(row.attempted_at, now),
        "last_error": f"the platform could not be asked yet ({reason}); asking again later",
        "updated_at": now,
    }


class Settler:
    """Settles the uncertain rows of the channels that can: :meth:`run_once` per pass."""

    def __init__(
        self,
        channels: Mapping[str, Channel],
        clock: Clock,
        *,
        batch_size: int = 50,
        concurrency: int = 4,
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self._channels = {n: c for n, c in channels.items() if isinstance(c, Settling)}
        self._clock = clock
        self.batch_size = batch_size
        self._concurrency = concurrency
        self._lease = lease

    @property
    def active(self) -> bool:
        return bool(self._channels)

    async def run_once(self, link: Link) -> dict[int, Verdict]:
        """Settle the rows due (at most one batch): the verdicts recorded, by row id."""
        if not self._channels:
            return {}
        now = self._clock.now()
        lease_until = now + self._lease
        names = sorted(self._channels)

        async def take(connection: AsyncConnection) -> list[Unsettled]:
            return await take_unsettled(connection, now, names, self.batch_size, lease_until)

        rows = await link.transaction(take, what="settling uncertain rows (claim)")
        if not rows:
            return {}
        limit = asyncio.Semaphore(self._concurrency)

        async def ask(row: Unsettled) -> Answered:
            channel = self._channels[row.message.channel]
            async with limit:
                settlement = await self._ask(channel, row)
            summary = channel.summary(row.message)
            return Answered(row, settlement, summary, channel.customer_facing)

        answered = list(await asyncio.gather(*(ask(row) for row in rows)))
        done_at = self._clock.now()

        async def write(connection: AsyncConnection) -> dict[int, Verdict]:
            return await write_settlements(
                connection, answered, now=done_at, lease_until=lease_until
            )

        written = await link.transaction(write, what="settling uncertain rows (record)")
        for item in answered:
            verdict = written.get(item.row.message.id)
            if verdict is not None and verdict is not Verdict.RETRY:
                log.info(
                    "outbox row %s settled %s: %s",
                    item.row.message.id,
                    verdict,
                    item.settlement.reason,
                )
        return written

    async def _ask(self, channel: Settling, row: Unsettled) -> Settlement:
        try:
            return await channel.settle(row.message, row.attempted_at)
        except Exception as exc:  # an adapter bug must not take the others down
            log.exception("channel %s raised settling outbox row %s", row.message.channel,
                          row.message.id)  # fmt: skip
            return Settlement(Verdict.RETRY, f"{type(exc).__name__}: {exc}")
