"""Welcome messages (``externalcontact/send_welcome_msg``) to a customer who just added staff.

The add event's WelcomeCode is good for 20 seconds and once: a row whose window has closed is
recorded ``expired`` without a call; the platform's 41050 (invalid or expired code) is
recorded the same way. 41051 means the customer and the staff member are already talking
(which includes: the code was used, by us or by the console's welcome message), so it fails.
Customer-facing, hence at-most-once: a send that may have gone out is never repeated blindly.

Settling an uncertain welcome is asking the platform with the same code, while it is valid:
only the first call with a code can send (DOC 92137: "仅有最先调用的可以发送成功。后续调用将
返回41051"), so the second call either sends the welcome the first never delivered, or answers
41051 because the first did. Past the code's window the platform cannot tell (41050 either
way): a person has to check.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.channels.results import result_of
from bot.wecom import WecomApiError, WecomClient
from sop.clock import Clock
from sop.delivery.channel import (
    OutboxMessage,
    Outcome,
    RateKey,
    SendResult,
    Settlement,
    Verdict,
)
from sop.delivery.messages import WELCOME, summarize

API = "externalcontact/send_welcome_msg"
CODE_INVALID = 41050
ALREADY_CHATTING = 41051


class WelcomeChannel:
    customer_facing = True
    #: The code lives 20 seconds: ask at once.
    settle_after = timedelta(0)

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

    async def settle(self, message: OutboxMessage, attempted_at: datetime) -> Settlement:
        """Call again with the same code: it sends now, or 41051 says the first try did."""
        now = self._clock.now()
        if message.expires_at is not None and now >= message.expires_at:
            return Settlement(
                Verdict.UNKNOWN,
                f"the welcome code's window closed at {message.expires_at.isoformat()} before"
                " WeCom could be asked whether the welcome went out",
            )
        code = message.payload.get("welcome_code")
        try:
            await self._client.call("POST", API, json=dict(message.payload))
        except WecomApiError as exc:
            if exc.errcode == ALREADY_CHATTING:
                return Settlement(
                    Verdict.SENT,
                    "send_welcome_msg answered 41051 for the same code: it was used, by the"
                    " attempt whose answer was lost",
                    {"welcome_code": code},
                    exc.errcode,
                )
            if exc.errcode == CODE_INVALID:
                return Settlement(
                    Verdict.UNKNOWN,
                    f"the welcome code is no longer valid (41050), so WeCom cannot tell"
                    f" whether the attempt at {attempted_at.isoformat()} sent it",
                    errcode=exc.errcode,
                )
            if exc.transient:
                return Settlement(Verdict.RETRY, str(exc), errcode=exc.errcode)
            return Settlement(Verdict.FAILED, str(exc), errcode=exc.errcode)
        return Settlement(
            Verdict.SENT,
            "the attempt had not reached WeCom: asking again with the code sent the welcome",
            {"welcome_code": code},
        )
