"""From a channel's answer to the row's next state, and the record of it.

:func:`decide` is the whole delivery policy in one pure function: sent, failed, expired,
uncertain, or pending again after a backoff. :func:`record` writes a group of decisions, each
fenced by the attempt number, so a sender whose lease lapsed (and whose row another sender has
since taken over) cannot overwrite the newer state; and it puts every sent message that concerns a
customer on that customer's timeline, in the same transaction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sop.delivery.channel import OutboxMessage, Outcome, SendResult
from sop.delivery.claims import ids_in
from sop.delivery.retry import RetryPolicy
from store.models import Direction, Interaction, OutboxRow, OutboxState

_FINAL = {
    Outcome.SENT: OutboxState.SENT,
    Outcome.PERMANENT: OutboxState.FAILED,
    Outcome.EXPIRED: OutboxState.EXPIRED,
    Outcome.UNCERTAIN: OutboxState.UNCERTAIN,
}


@dataclass(frozen=True)
class Decision:
    state: OutboxState
    errcode: int | None = None
    error: str | None = None
    retry_at: datetime | None = None
    platform_ids: dict[str, Any] = field(default_factory=dict)


def decide(
    message: OutboxMessage,
    result: SendResult,
    *,
    customer_facing: bool,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random,
) -> Decision:
    ids = dict(result.platform_ids)
    if result.outcome is not Outcome.TRANSIENT:
        error = result.error or None
        return Decision(_FINAL[result.outcome], result.errcode, error, platform_ids=ids)
    if customer_facing and result.maybe_applied:
        error = (
            f"may have been delivered ({result.error}); not resent automatically: "
            f"check with the recipient, then `scrm outbox resend {message.id}` if not"
        )
        return Decision(OutboxState.UNCERTAIN, result.errcode, error, platform_ids=ids)
    if policy.gives_up(message.attempts):
        error = f"gave up after {message.attempts} attempt(s): {result.error}"
        return Decision(OutboxState.FAILED, result.errcode, error, platform_ids=ids)
    retry_at = now + policy.delay(message.attempts, rng)
    if message.expires_at is not None and retry_at >= message.expires_at:
        error = f"window closed before a retry was possible: {result.error}"
        return Decision(OutboxState.EXPIRED, result.errcode, error, platform_ids=ids)
    return Decision(OutboxState.PENDING, result.errcode, result.error, retry_at, ids)


@dataclass(frozen=True)
class Finished:
    """One send's decision, with what its timeline entry needs."""

    message: OutboxMessage
    decision: Decision
    summary: str
    customer_facing: bool


def on_timeline(message: OutboxMessage, decision: Decision) -> bool:
    """Whether this outcome goes on a customer's timeline (only those need a summary)."""
    return decision.state is OutboxState.SENT and message.customer_id is not None


class NotAllOurs(Exception):
    """Raised by :func:`record` with ``all_or_nothing``: some row changed hands, so the
    caller rolls the transaction back and records again without it."""


async def record(
    session: AsyncSession,
    outcomes: Sequence[Finished],
    *,
    now: datetime,
    all_or_nothing: bool = False,
) -> set[int]:
    """Write each decision if its row is still ours (``sending``, same attempt): their ids.

    A handful of statements for the whole group: one fenced read (locking the rows on
    PostgreSQL; SQLite's transaction holds the write lock already), one executemany
    ``UPDATE`` per set of columns, one executemany ``INSERT`` for the timeline entries.

    ``all_or_nothing`` skips the read where the driver counts the rows each fenced
    ``UPDATE`` of an executemany changed (SQLite): when every row was still ours (nearly
    always) the count says so; otherwise it raises :class:`NotAllOurs` before the timeline
    is written, and the caller must roll back and call again without the flag.
    """
    if not outcomes:
        return set()
    if all_or_nothing and session.get_bind().dialect.supports_sane_multi_rowcount:
        await _write(session, outcomes, now, counted=len(outcomes))
        return {o.message.id for o in outcomes}
    wanted = {o.message.id: o.message.attempts for o in outcomes}
    fenced_read = _FENCED_READ[session.get_bind().dialect.name == "postgresql"]
    current = await session.execute(fenced_read, {"ids": list(wanted)})
    ours = {row_id for row_id, attempts in current.all() if wanted[row_id] == attempts}
    await _write(session, [o for o in outcomes if o.message.id in ours], now, counted=None)
    return ours


async def _write(
    session: AsyncSession, outcomes: Sequence[Finished], now: datetime, *, counted: int | None
) -> None:
    """The fenced updates and timeline entries of ``outcomes``; when ``counted`` is given,
    first check that the updates changed that many rows."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}  # by (sent?, *columns)
    timeline: list[dict[str, Any]] = []
    for outcome in outcomes:
        message, decision = outcome.message, outcome.decision
        values = _values(message, decision, now)
        groups.setdefault((decision.state is OutboxState.SENT, *values), []).append(values)
        if on_timeline(message, decision):
            timeline.append(_timeline_entry(outcome, now))
    changed = 0
    for (sent, *_), rows in groups.items():
        statement = _FENCED_SENT if sent else _FENCED
        changed += (await session.execute(statement, rows)).rowcount  # type: ignore[attr-defined]
    if counted is not None and changed != counted:
        raise NotAllOurs(f"{counted - changed} of {counted} rows changed hands while sent")
    if timeline:
        await session.execute(insert(TIMELINE), timeline)


OUTBOX = OutboxRow.metadata.tables[OutboxRow.__tablename__]
_C = OUTBOX.c
TIMELINE = Interaction.metadata.tables[Interaction.__tablename__]
_FENCED_READ = {
    postgres: select(_C.id, _C.attempts)
    .where(ids_in("ids", postgres=postgres), _C.state == OutboxState.SENDING)
    .with_for_update()
    for postgres in (False, True)
}
#: ``now`` is bound once per row (``b_now``) for both timestamps: each bound datetime costs
#: a conversion per row of the executemany.
_FENCED = (
    update(OUTBOX)
    .where(
        _C.id == bindparam("b_id"),
        _C.state == OutboxState.SENDING,
        _C.attempts == bindparam("b_attempts"),
    )
    .values(updated_at=bindparam("b_now"))
)
_FENCED_SENT = _FENCED.values(sent_at=bindparam("b_now"))


def _values(message: OutboxMessage, decision: Decision, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "b_id": message.id,
        "b_attempts": message.attempts,
        "state": decision.state,
        "lease_until": None,
        "last_errcode": decision.errcode,
        "last_error": decision.error,
        "b_now": now,
    }
    if decision.platform_ids:
        values["platform_ids"] = decision.platform_ids
    if decision.retry_at is not None:
        values["due_at"] = decision.retry_at
    return values


def _timeline_entry(outcome: Finished, now: datetime) -> dict[str, Any]:
    message, decision = outcome.message, outcome.decision
    return {
        "customer_id": message.customer_id,
        "group_id": None,
        "staff_userid": None,
        "direction": Direction.OUTBOUND if outcome.customer_facing else Direction.EVENT,
        "kind": f"outbox:{message.channel}"[:48],
        "summary": outcome.summary,
        "data": {
            "outbox_id": message.id,
            "key": message.key,
            "recipient": message.recipient,
            "payload": dict(message.payload),
            "platform_ids": decision.platform_ids,
        },
        "source": "outbox",
        "inbox_id": None,
        "seq": 0,
        "occurred_at": now,
        "recorded_at": now,
    }
