"""Delivery: the outbox, the channel protocol, and the sender that drains one into the other."""

from sop.delivery.channel import (
    Channel,
    OutboxMessage,
    Outcome,
    RateKey,
    SendResult,
    Settlement,
    Settling,
    Verdict,
)
from sop.delivery.outbox import enqueue
from sop.delivery.ratelimit import Rate, RateLimiter, RateLimits
from sop.delivery.retry import RetryPolicy
from sop.delivery.sender import PassReport, Sender, SenderSettings

__all__ = [
    "Channel",
    "OutboxMessage",
    "Outcome",
    "PassReport",
    "Rate",
    "RateKey",
    "RateLimiter",
    "RateLimits",
    "RetryPolicy",
    "SendResult",
    "Sender",
    "SenderSettings",
    "Settlement",
    "Settling",
    "Verdict",
    "enqueue",
]
