"""WeCom API errors sorted into the sender's outcomes, the same way for every channel."""

from __future__ import annotations

from bot.wecom.errors import WecomApiError, WecomCredentialsError
from sop.delivery.channel import Outcome, SendResult


def result_of(exc: WecomApiError) -> SendResult:
    """Transient errors are retried by the sender; anything else fails the row with the
    platform's errcode and message. A refused secret is a configuration problem, not the
    message's: the row is retried (within its limit) so that fixing the config saves it."""
    if exc.transient or isinstance(exc, WecomCredentialsError):
        return SendResult(
            Outcome.TRANSIENT, exc.errcode, str(exc), maybe_applied=exc.maybe_applied
        )
    return SendResult(Outcome.PERMANENT, exc.errcode, str(exc))
