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


async def record(
    session: AsyncSession, outcomes: Sequence[Finished], *, now: datetime
) -> set[int]:
    """Write each decision if its row is still ours (``sending``, same attempt): their ids.

    A handful of statements for the whole group: one fenced read (locking the rows on
    PostgreSQL; SQLite's transaction holds the write lock already), one executemany
    ``UPDATE`` per set of columns, one executemany ``INSERT`` for the timeline entries.
    """
    if not outcomes:
        return set()
    wanted = {o.message.id: o.message.attempts for o in outcomes}
    current = await session.execute(
        select(_C.id, _C.attempts)
        .where(_C.id.in_(list(wanted)), _C.state == OutboxState.SENDING)
        .with_for_update()
    )
    ours = {row_id for row_id, attempts in current.all() if wanted[row_id] == attempts}
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    timeline: list[dict[str, Any]] = []
    for outcome in outcomes:
        message, decision = outcome.message, outcome.decision
        if message.id not in ours:
            continue
        values = _values(message, decision, now)
        groups.setdefault(tuple(values), []).append(values)
        if decision.state is OutboxState.SENT and message.customer_id is not None:
            timeline.append(_timeline_entry(outcome, now))
    for rows in groups.values():
        await session.execute(_FENCED, rows)
    if timeline:
        await session.execute(insert(TIMELINE), timeline)
    return ours


OUTBOX = OutboxRow.metadata.tables[OutboxRow.__tablename__]
_C = OUTBOX.c
TIMELINE = Interaction.metadata.tables[Interaction.__tablename__]
_FENCED = update(OUTBOX).where(
    _C.id == bindparam("b_id"),
    _C.state == OutboxState.SENDING,
    _C.attempts == bindparam("b_attempts"),
)


def _values(message: OutboxMessage, decision: Decision, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "b_id": message.id,
        "b_attempts": message.attempts,
        "state": decision.state,
        "lease_until": None,
        "last_errcode": decision.errcode,
        "last_error": decision.error,
        "updated_at": now,
    }
    if decision.platform_ids:
        values["platform_ids"] = decision.platform_ids
    if decision.state is OutboxState.SENT:
        values["sent_at"] = now
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
