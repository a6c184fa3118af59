"""From a channel's answer to the row's next state.

:func:`decide` is the whole delivery policy in one pure function: sent, failed, expired,
uncertain (to be settled, where the channel can ask the platform), or pending again after a
backoff. :mod:`.writes` records the decisions.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sop.delivery.channel import OutboxMessage, Outcome, SendResult
from sop.delivery.retry import RetryPolicy
from store.models import Direction, OutboxState

_FINAL = {
    Outcome.SENT: OutboxState.SENT,
    Outcome.PERMANENT: OutboxState.FAILED,
    Outcome.EXPIRED: OutboxState.EXPIRED,
    Outcome.UNCERTAIN: OutboxState.UNCERTAIN,
}
RESEND_HINT = "check with the recipient, then `scrm outbox resend {id}` if not"


@dataclass(frozen=True, slots=True)
class Decision:
    state: OutboxState
    errcode: int | None = None
    error: str | None = None
    retry_at: datetime | None = None
    platform_ids: Mapping[str, Any] = field(default_factory=dict)
    #: For an uncertain row: when to ask the platform what became of it (None: a person).
    settle_at: datetime | None = None


def decide(
    message: OutboxMessage,
    result: SendResult,
    *,
    customer_facing: bool,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random,
    settle_after: timedelta | None = None,
) -> Decision:
    """``settle_after``: the channel can settle uncertain sends, this long after."""
    ids = result.platform_ids  # not copied: nothing changes it
    settle_at = None if settle_after is None else now + settle_after
    if result.outcome is Outcome.UNCERTAIN:
        why = result.error or "the platform's answer leaves the outcome open"
        if settle_at is None:
            why = f"{why}; {RESEND_HINT.format(id=message.id)}"
        return Decision(OutboxState.UNCERTAIN, result.errcode, why, None, ids, settle_at)
    if result.outcome is not Outcome.TRANSIENT:
        return Decision(_FINAL[result.outcome], result.errcode, result.error or None, None, ids)
    if customer_facing and result.maybe_applied:
        if settle_at is None:
            error = f"may have been delivered ({result.error}); not resent automatically: "
            error += RESEND_HINT.format(id=message.id)
        else:
            error = f"may have been delivered ({result.error}); asking the platform"
        return Decision(OutboxState.UNCERTAIN, result.errcode, error, None, ids, settle_at)
    if policy.gives_up(message.attempts):
        error = f"gave up after {message.attempts} attempt(s): {result.error}"
        return Decision(OutboxState.FAILED, result.errcode, error, platform_ids=ids)
    retry_at = now + policy.delay(message.attempts, rng)
    if message.expires_at is not None and retry_at >= message.expires_at:
        error = f"window closed before a retry was possible: {result.error}"
        return Decision(OutboxState.EXPIRED, result.errcode, error, platform_ids=ids)
    return Decision(OutboxState.PENDING, result.errcode, result.error, retry_at, ids)


@dataclass(frozen=True, slots=True)
class Finished:
    """One send's decision, with what its timeline entry needs."""

    message: OutboxMessage
    decision: Decision
    summary: str
    customer_facing: bool


def on_timeline(message: OutboxMessage, decision: Decision) -> bool:
    """Whether this outcome goes on a customer's timeline (only those need a summary)."""
    return decision.state is OutboxState.SENT and message.customer_id is not None


def timeline_entry(
    message: OutboxMessage,
    summary: str,
    platform_ids: Mapping[str, Any],
    customer_facing: bool,
    now: datetime,
) -> dict[str, Any]:
    """The customer's timeline entry for ``message``, sent at ``now``."""
    return {
        "customer_id": message.customer_id,
        "group_id": None,
        "staff_userid": None,
        "direction": Direction.OUTBOUND if customer_facing else Direction.EVENT,
        "kind": f"outbox:{message.channel}"[:48],
        "summary": summary,
        "data": {
            "outbox_id": message.id,
            "key": message.key,
            "recipient": message.recipient,
            "payload": dict(message.payload),
            "platform_ids": dict(platform_ids),
        },
        "source": "outbox",
        "inbox_id": None,
        "seq": 0,
        "occurred_at": now,
        "recorded_at": now,
    }
