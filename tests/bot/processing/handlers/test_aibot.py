from __future__ import annotations

from sop.events import MessageReceived, StaffAction
from store.models import CustomerGroup
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


async def test_group_mention_creates_the_group_and_a_message(harness: Harness) -> None:
    await harness.feed(
        samples.aibot("text", text={"content": "@RobotA hello robot"}),
        samples.aibot("text", chattype="single", text={"content": "私聊"}),
        samples.aibot("stream", stream={"id": "STREAMID"}),
        source="aibot:helper",
    )
    group = await harness.one(CustomerGroup, chat_id="CHATID")
    in_group, direct = harness.published(MessageReceived)
    assert (in_group.chat_type, in_group.group_id, in_group.staff_userid) == (
        "group",
        group.id,
        "zhangsan",
    )
    assert in_group.text == "@RobotA hello robot"
    assert (direct.chat_type, direct.group_id) == ("single", None)
    assert len(await harness.timeline()) == 2  # the stream poll leaves no trace


async def test_bot_events(harness: Harness) -> None:
    await harness.feed(
        samples.aibot("event", chattype="single", event={"eventtype": "enter_chat"}),
        samples.aibot(
            "event",
            event={"eventtype": "feedback_event", "feedback_event": {"id": "F", "type": 2}},
        ),
        source="aibot:helper",
    )
    (action,) = harness.published(StaffAction)
    assert (action.staff_userid, action.action) == ("zhangsan", "enter_chat")
    timeline = await harness.timeline()
    assert [e.kind for e in timeline] == ["bot_event", "bot_event"]
    assert timeline[1].data["detail"] == {"id": "F", "type": 2}
