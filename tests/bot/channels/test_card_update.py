"""The card update channel against the fake WeCom: the press's code, a refused code, a bad row."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.channels.app_message import AppMessageChannel
from bot.channels.card_update import CardUpdateChannel
from bot.wecom import WecomClient
from sop.delivery.channel import OutboxMessage, Outcome
from sop.delivery.messages import Button, button_card
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import AGENT_ID

CARD = button_card(task_id="task-1", title="回访", buttons=[Button("Done", "task:1:done")])


def row(payload: dict[str, object], *, channel: str = "wecom_card_update") -> OutboxMessage:
    return OutboxMessage(
        id=1,
        key="task:1:update:2",
        channel=channel,
        recipient="zhangsan",
        payload=payload,
        attempts=1,
        due_at=datetime(2026, 11, 23, 9, tzinfo=UTC),
    )


async def test_a_pressed_card_is_replaced_with_its_new_state(
    fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    sent = await AppMessageChannel(wecom_client, AGENT_ID).send(row(CARD, channel="wecom_app"))
    assert sent.outcome is Outcome.SENT
    delivery = fake_wecom.outbound.delivered_to("zhangsan")[0]
    code = fake_wecom.outbound.press(delivery.msgid)
    new_card = {**CARD["template_card"], "replace_text": "✅ Done"}
    channel = CardUpdateChannel(wecom_client, AGENT_ID)

    result = await channel.send(row({"response_code": code, "template_card": new_card}))

    assert result.outcome is Outcome.SENT
    [update] = fake_wecom.calls_to("message/update_template_card")
    assert update.json == {
        "agentid": AGENT_ID,
        "response_code": code,
        "userids": ["zhangsan"],
        "template_card": new_card,
    }
    assert channel.summary(row({"response_code": code, "template_card": new_card})) == (
        "card of zhangsan now shows '✅ Done'"
    )
    assert not channel.customer_facing


async def test_a_refused_code_fails_the_row_for_good(wecom_client: WecomClient) -> None:
    channel = CardUpdateChannel(wecom_client, AGENT_ID)
    result = await channel.send(row({"response_code": "stale", "replace_name": "Done"}))
    assert (result.outcome, result.errcode) == (Outcome.PERMANENT, 40058)


async def test_a_malformed_row_names_the_fix(wecom_client: WecomClient) -> None:
    result = await CardUpdateChannel(wecom_client, AGENT_ID).send(row({"replace_name": "x"}))
    assert result.outcome is Outcome.PERMANENT
    assert "task:1:update:2" in result.error and "sop.tasks.cards.update_card" in result.error
