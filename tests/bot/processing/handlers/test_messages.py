from __future__ import annotations

from sop.events import MessageReceived
from store.models import Customer, Direction
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


async def test_staff_messages_to_the_app(harness: Harness) -> None:
    await harness.feed(
        samples.app_message("text", Content="客户要报价", msg_id=1),
        samples.app_message("image", PicUrl="http://pic", MediaId="M1", msg_id=2),
        samples.app_message("voice", MediaId="V", Format="amr", msg_id=3),
        samples.app_message("video", MediaId="V2", ThumbMediaId="T", msg_id=4),
        samples.app_message(
            "location", Location_X="1.5", Location_Y="2.5", Scale=1, Label="L", msg_id=5
        ),
        samples.app_message("link", Title="官网", Url="http://x", msg_id=6),
        samples.app_message("file", MediaId="F", msg_id=7),
    )
    events = harness.published(MessageReceived)
    assert [e.msg_type for e in events] == [
        "text",
        "image",
        "voice",
        "video",
        "location",
        "link",
        "file",
    ]
    assert events[0].text == "客户要报价" and events[0].staff_userid == "zhangsan"
    assert {e.customer_id for e in events} == {None}
    assert events[5].text == "[link] 官网" and events[0].msg_id == "1"
    timeline = await harness.timeline()
    assert [(e.kind, e.direction, e.seq) for e in timeline][:1] == [
        ("message", Direction.INBOUND, 0)
    ]
    assert timeline[0].summary == "客户要报价" and timeline[0].staff_userid == "zhangsan"


async def test_a_customer_message_touches_the_customer(harness: Harness) -> None:
    await harness.feed(samples.app_message("text", sender="wmCustomer9", Content="在吗"))
    customer = await harness.one(Customer, external_userid="wmCustomer9")
    assert customer.last_interaction_at is not None
    assert customer.last_interaction_at.timestamp() == samples.CREATE_TIME
    (event,) = harness.published(MessageReceived)
    assert (event.customer_id, event.staff_userid) == (customer.id, None)
