"""From a channel's answer to the row's next state, and the record of it.

:func:`decide` is the whole delivery policy in one pure function: sent, failed, expired,
uncertain, or pending again after a backoff. :func:`record` writes the decision, fenced by
the attempt number, so a sender whose lease lapsed (and whose row another sender has since
taken over) cannot overwrite the newer state; and it puts every sent message that concerns a
customer on that customer's timeline, in the same transaction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import update
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


async def record(
    session: AsyncSession,
    message: OutboxMessage,
    decision: Decision,
    *,
    now: datetime,
    summary: str,
    customer_facing: bool,
) -> bool:
    """Write ``decision`` if the row is still ours (``sending``, same attempt); True if so."""
    values: dict[str, Any] = {
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
    result = await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.id == message.id,
            OutboxRow.state == OutboxState.SENDING,
            OutboxRow.attempts == message.attempts,
        )
        .values(values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    if decision.state is OutboxState.SENT and message.customer_id is not None:
        session.add(_timeline_entry(message, decision, now, summary, customer_facing))
    return True


def _timeline_entry(
    message: OutboxMessage, decision: Decision, now: datetime, summary: str, customer: bool
) -> Interaction:
    return Interaction(
        customer_id=message.customer_id,
        direction=Direction.OUTBOUND if customer else Direction.EVENT,
        kind=f"outbox:{message.channel}"[:48],
        summary=summary,
        data={
            "outbox_id": message.id,
            "key": message.key,
            "recipient": message.recipient,
            "payload": dict(message.payload),
            "platform_ids": decision.platform_ids,
        },
        source="outbox",
        seq=0,
        occurred_at=now,
        recorded_at=now,
    )
