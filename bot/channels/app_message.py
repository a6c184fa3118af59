"""Staff app messages (``message/send``): nudges, notices and button cards to staff members.

At-least-once: a message whose send was interrupted is sent again, since a staff member
seeing a reminder twice is better than missing it. The payload is the message body built by
:mod:`sop.delivery.messages` (text, markdown, textcard, template_card); the row's recipient is
the staff userid. WeCom answers errcode 0 even when a recipient is unknown or outside the
app's visibility, and lists it in ``invaliduser``: that is a failure here.
"""

from __future__ import annotations

from typing import Any

from bot.channels.results import result_of
from bot.wecom import WecomApiError, WecomClient
from sop.delivery.channel import OutboxMessage, Outcome, RateKey, SendResult
from sop.delivery.messages import STAFF_APP, summarize

API = "message/send"
#: "UserID, department and tag all invalid or outside the app's visibility scope."
ALL_RECIPIENTS_INVALID = 81013
_PLATFORM_IDS = ("msgid", "response_code")


class AppMessageChannel:
    """Sends as the app ``agent_id`` whose secret ``client`` holds."""

    customer_facing = False

    def __init__(self, client: WecomClient, agent_id: int, *, name: str = STAFF_APP) -> None:
        self._client = client
        self._agent_id = agent_id
        self.name = name

    def rate_keys(self, message: OutboxMessage) -> list[RateKey]:
        return [
            RateKey(f"api:{API}", self._client.credential),
            RateKey(f"member:{API}", message.recipient),
        ]

    def summary(self, message: OutboxMessage) -> str:
        return f"to {message.recipient}: {summarize(dict(message.payload))}"

    async def send(self, message: OutboxMessage) -> SendResult:
        body: dict[str, Any] = {
            **message.payload,
            "touser": message.recipient,
            "agentid": self._agent_id,
        }
        try:
            answer = await self._client.call("POST", API, json=body)
        except WecomApiError as exc:
            return result_of(exc)
        if _refused(message.recipient, answer):
            return SendResult(
                Outcome.PERMANENT,
                ALL_RECIPIENTS_INVALID,
                f"WeCom did not deliver to {message.recipient!r} (invaliduser/unlicenseduser):"
                " unknown userid, outside app agent "
                f"{self._agent_id}'s visibility scope, or without a licence",
            )
        return SendResult(
            Outcome.SENT, platform_ids={k: answer[k] for k in _PLATFORM_IDS if answer.get(k)}
        )


def _refused(recipient: str, answer: dict[str, Any]) -> bool:
    """Whether WeCom listed ``recipient`` as invalid or unlicensed (usually neither is there)."""
    for field in ("invaliduser", "unlicenseduser"):
        listed = answer.get(field)
        if listed and recipient in str(listed).split("|"):
            return True
    return False
