from __future__ import annotations

import json

from sop.events import MessageReceived, Subscribed
from store.models import Customer, MpFollower
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


def mp(msg_type: str, at: int, **fields: str) -> str:
    return samples.xml(
        ToUserName="gh_shop", FromUserName="oOpen1", CreateTime=at, MsgType=msg_type, **fields
    )


async def test_follow_message_unfollow(harness: Harness) -> None:
    await harness.feed(
        mp("event", 1700000000, Event="subscribe", EventKey="qrscene_poster"),
        mp("text", 1700000100, Content="有优惠吗", MsgId="5"),
        mp("event", 1700000200, Event="unsubscribe"),
        source="mp:shop",
    )
    follower = await harness.one(MpFollower, account="shop", openid="oOpen1")
    assert follower.subscribe_scene == "poster" and follower.subscribed is False
    assert follower.last_message_at is not None
    assert follower.last_message_at.timestamp() == 1700000100
    assert follower.unsubscribed_at is not None
    customer = await harness.one(Customer)
    assert follower.customer_id == customer.id
    assert [(e.subscribed, e.scene) for e in harness.published(Subscribed)] == [
        (True, "poster"),
        (False, None),
    ]
    (message,) = harness.published(MessageReceived)
    assert (message.customer_id, message.text) == (customer.id, "有优惠吗")
    kinds = [e.kind for e in await harness.timeline(customer_id=customer.id)]
    assert kinds == ["subscribed", "message", "unsubscribed"]


async def test_json_push_with_unionid_joins_the_known_customer(harness: Harness) -> None:
    async with harness.db.sessions.begin() as session:
        session.add(
            Customer(external_userid="wmKnown", unionid="uUnion", created_at=harness.clock.now())
        )
    payload = json.dumps(
        {
            "ToUserName": "gh_shop",
            "FromUserName": "oOpen2",
            "CreateTime": 1700000000,
            "MsgType": "event",
            "Event": "subscribe",
            "UnionId": "uUnion",
        }
    )
    await harness.feed(payload, source="mp:shop")
    follower = await harness.one(MpFollower)
    known = await harness.one(Customer, external_userid="wmKnown")
    assert follower.customer_id == known.id
    assert await harness.count(Customer) == 1
