"""Template card updates (``message/update_template_card``): a task card showing its new state.

Rows come from :mod:`sop.tasks.cards` on the ``wecom_card_update`` channel, with the
``response_code`` of the press (or of the card's send) and the new ``template_card`` (or a
``replace_name`` for the pressed button); the row's recipient is the staff member whose card
it is. Not customer-facing: updating a card twice shows the same card, so an interrupted
update is simply sent again. A code the platform refuses (used, older than 72 hours) fails
the row for good: the card keeps its old look, the task its new state.
"""

from __future__ import annotations

from bot.channels.results import result_of
from bot.wecom import WecomApiError, WecomClient
from sop.delivery.channel import OutboxMessage, Outcome, RateKey, SendResult
from sop.tasks.cards import CARD_UPDATE

API = "message/update_template_card"


class CardUpdateChannel:
    """Updates cards sent by the app ``agent_id`` whose secret ``client`` holds."""

    customer_facing = False

    def __init__(self, client: WecomClient, agent_id: int, *, name: str = CARD_UPDATE) -> None:
        self._client = client
        self._agent_id = agent_id
        self.name = name

    def rate_keys(self, message: OutboxMessage) -> list[RateKey]:
        return [RateKey(f"api:{API}", self._client.credential)]

    def summary(self, message: OutboxMessage) -> str:
        card = message.payload.get("template_card") or {}
        shown = card.get("replace_text") or message.payload.get("replace_name") or ""
        return f"card of {message.recipient} now shows {shown!r}"

    async def send(self, message: OutboxMessage) -> SendResult:
        payload = message.payload
        code = payload.get("response_code")
        card = payload.get("template_card")
        replace = payload.get("replace_name")
        if not isinstance(code, str) or not code or (card is None) == (replace is None):
            return SendResult(
                Outcome.PERMANENT,
                error=f"outbox row {message.id} ({message.key}): a card update needs a"
                " response_code and one of template_card / replace_name; build it with"
                " sop.tasks.cards.update_card",
            )
        try:
            answer = await self._client.update_template_card(
                agent_id=self._agent_id,
                response_code=code,
                userids=[message.recipient] if message.recipient else (),
                template_card=dict(card) if card is not None else None,
                replace_name=str(replace) if replace is not None else None,
            )
        except WecomApiError as exc:
            return result_of(exc)
        invalid = answer.get("invaliduser") or []
        if message.recipient and message.recipient in invalid:
            return SendResult(
                Outcome.PERMANENT,
                error=f"WeCom did not update the card of {message.recipient!r} (invaliduser)",
            )
        return SendResult.sent()
