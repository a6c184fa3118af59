"""Welcome messages (``externalcontact/send_welcome_msg``) to a customer who just added staff.

The add event's WelcomeCode is good for 20 seconds and once: a row whose window has closed is
recorded ``expired`` without a call; the platform's 41050 (invalid or expired code) is
recorded the same way. 41051 means the customer and the staff member are already talking
(which includes: the code was used, by us or by the console's welcome message), so it fails.
Customer-facing, hence at-most-once: a send that may have gone out is never repeated.
"""

from __future__ import annotations

from bot.channels.results import result_of
from bot.wecom import WecomApiError, WecomClient
from sop.clock import Clock
from sop.delivery.channel import OutboxMessage, Outcome, RateKey, SendResult
from sop.delivery.messages import WELCOME, summarize

API = "externalcontact/send_welcome_msg"
CODE_INVALID = 41050
ALREADY_CHATTING = 41051


class WelcomeChannel:
    customer_facing = True

    def __init__(self, client: WecomClient, clock: Clock, *, name: str = WELCOME) -> None:
        self._client = client
        self._clock = clock
        self.name = name

    def rate_keys(self, message: OutboxMessage) -> list[RateKey]:
        return [RateKey(f"api:{API}", self._client.credential)]

    def summary(self, message: OutboxMessage) -> str:
        return f"welcome: {summarize(dict(message.payload))}"

    async def send(self, message: OutboxMessage) -> SendResult:
        now = self._clock.now()
        if message.expires_at is not None and now >= message.expires_at:
            return SendResult(
                Outcome.EXPIRED,
                error=f"the welcome code's window closed at {message.expires_at.isoformat()}",
            )
        if not message.payload.get("welcome_code"):
            return SendResult(
                Outcome.PERMANENT,
                error="payload has no welcome_code: build it with sop.delivery.messages.welcome",
            )
        try:
            await self._client.call("POST", API, json=dict(message.payload))
        except WecomApiError as exc:
            if exc.errcode == CODE_INVALID:
                return SendResult(Outcome.EXPIRED, exc.errcode, str(exc))
            return result_of(exc)
        return SendResult.sent({"welcome_code": message.payload["welcome_code"]})
