"""The contract between the sender and the adapters that really send: one Channel per way out.

The sender knows rows, time, limits and retries; a channel knows one platform API. The sender
hands a channel a detached :class:`OutboxMessage` (no database session travels with it) and
gets a :class:`SendResult` back, never an exception for anything the platform can answer:
the adapter sorts each answer into an :class:`Outcome`, so the sender's policy stays the same
for every channel (staff app messages, welcome messages, mass messages, Official Account
messages, ...).

A customer-facing send whose outcome is unknown (the sender crashed, or the answer was lost)
is ``uncertain`` and never sent again blindly. A channel whose platform can tell what became
of it also implements :class:`Settling`: the sender asks it and records the answer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable


class Outcome(enum.StrEnum):
    SENT = "sent"
    #: Worth trying again later (busy, rate-limited, 5xx, timeout, dropped connection).
    TRANSIENT = "transient"
    #: Will fail the same way every time (bad recipient, bad content, refused by a rule).
    PERMANENT = "permanent"
    #: Its window passed (a welcome code older than 20 s, a closed 48-hour window).
    EXPIRED = "expired"
    #: The platform may or may not have delivered it; a person has to check.
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One claimed outbox row, as the channel sees it."""

    id: int
    key: str
    channel: str
    recipient: str
    payload: Mapping[str, Any]
    attempts: int  # including the one now being made
    due_at: datetime
    expires_at: datetime | None = None
    customer_id: int | None = None
    last_errcode: int | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one send.

    ``maybe_applied`` marks a transient failure after which the platform may have acted
    (a timeout once the request was out): for a customer-facing channel the sender turns it
    into ``uncertain`` rather than risk a second message.
    """

    outcome: Outcome
    errcode: int | None = None
    error: str = ""
    platform_ids: Mapping[str, Any] = field(default_factory=dict)
    maybe_applied: bool = False

    @classmethod
    def sent(cls, platform_ids: Mapping[str, Any] | None = None) -> SendResult:
        return cls(Outcome.SENT, platform_ids=dict(platform_ids or {}))


@dataclass(frozen=True, slots=True)
class RateKey:
    """A budget a send spends: ``scope`` names the limit set, ``key`` whose budget it is."""

    scope: str  # "api:message/send", "member:message/send"
    key: str  # "" for a corp-wide API budget, the staff userid for a per-member one


class Channel(Protocol):
    """One way out. Implementations live in ``bot`` (they talk to the platform).

    ``name`` is what outbox rows carry in ``channel``. ``customer_facing`` channels are
    at-most-once: a send whose outcome is unknown is never repeated by the sender.
    """

    @property
    def name(self) -> str: ...

    @property
    def customer_facing(self) -> bool: ...

    def rate_keys(self, message: OutboxMessage) -> list[RateKey]:
        """The budgets one send of ``message`` spends (empty: unlimited)."""
        ...

    def summary(self, message: OutboxMessage) -> str:
        """A one-line description for timelines and the operator console."""
        ...

    async def send(self, message: OutboxMessage) -> SendResult:
        """Send once; sort every platform answer into a :class:`SendResult`."""
        ...


class Verdict(enum.StrEnum):
    """What the platform says became of an uncertain send."""

    #: It has it (the first try went out, or the check itself delivered it): ``sent``.
    SENT = "sent"
    #: It never got it: safe to send again, so the row is ``pending`` again.
    NOT_SENT = "not_sent"
    #: It refuses it (and so refused the first try too): the row is ``failed``.
    FAILED = "failed"
    #: It cannot tell (any more): the row stays ``uncertain`` for a person.
    UNKNOWN = "unknown"
    #: The check itself failed (busy, unreachable): ask again later.
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Settlement:
    verdict: Verdict
    #: Why, for the row's ``last_error`` and the operator: what the platform answered.
    reason: str
    platform_ids: Mapping[str, Any] = field(default_factory=dict)
    errcode: int | None = None


@runtime_checkable
class Settling(Protocol):
    """A channel that can find out what became of an uncertain send.

    ``settle_after`` is how long after a row became uncertain to ask first (the platform's
    own records may lag behind a request that timed out). ``settle`` must be safe to call
    more than once for the same row, and must never deliver a message a second time.
    """

    @property
    def settle_after(self) -> timedelta: ...

    async def settle(self, message: OutboxMessage, attempted_at: datetime) -> Settlement:
        """Ask the platform about ``message``, whose attempt started at ``attempted_at``."""
        ...
