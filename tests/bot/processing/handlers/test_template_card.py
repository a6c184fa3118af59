from __future__ import annotations

from sop.events import CardPressed
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


async def test_card_pressed_in_the_app_and_in_the_bot(harness: Harness) -> None:
    await harness.feed(samples.DOC_90240_TEMPLATE_CARD)
    await harness.feed(
        samples.aibot(
            "event",
            event={
                "eventtype": "template_card_event",
                "template_card_event": {
                    "card_type": "button_interaction",
                    "event_key": "done",
                    "task_id": "task-9",
                },
            },
        ),
        source="aibot:helper",
    )
    app, bot = harness.published(CardPressed)
    assert (app.staff_userid, app.event_key, app.task_id, app.response_code, app.card_type) == (
        "FromUser",
        "key111",
        "taskid111",
        "ResponseCode",
        "text_notice",
    )
    assert (bot.staff_userid, bot.event_key, bot.task_id) == ("zhangsan", "done", "task-9")
    first = (await harness.timeline())[0]
    assert first.kind == "card_pressed"
    assert first.data["selected"] == {
        "QuestionKey1": ["OptionId1", "OptionId2"],
        "QuestionKey2": ["OptionId3"],
    }
