"""keyword_reply.yaml end to end: an Official Account follower who asks about the price gets
the answer as a customer-service message inside the 48-hour window their message opened; a
message without a keyword gets nothing."""

from __future__ import annotations

from store.models import Enrollment, EnrollmentState, OutboxRow
from tests.support.e2e import World

FOLLOWER = "oKeywordFollower0000000000001"


async def test_a_price_question_is_answered_on_the_official_account(world: World) -> None:
    await world.follows_mp(FOLLOWER)
    asked_at = world.now
    await world.says_on_mp(FOLLOWER, "请问专业版多少钱？")
    await world.settle()

    [answer] = world.mp.delivered_to(FOLLOWER)
    assert answer.msgtype == "text"
    content = answer.body["text"]["content"]
    assert "标准版 ¥199/月" in content and "请问专业版多少钱" in content
    assert answer.at == asked_at  # at once, well inside the 48-hour window
    [enrollment] = await world.rows(Enrollment, playbook="keyword_reply")
    assert enrollment.state is EnrollmentState.COMPLETED


async def test_every_matching_message_gets_its_answer(world: World) -> None:
    await world.follows_mp(FOLLOWER)
    await world.says_on_mp(FOLLOWER, "报价单能发一下吗")
    await world.settle()
    await world.says_on_mp(FOLLOWER, "价格有优惠吗")
    await world.settle()
    assert len(world.mp.delivered_to(FOLLOWER)) == 2  # reentry: always


async def test_a_message_without_a_keyword_gets_nothing(world: World) -> None:
    await world.follows_mp(FOLLOWER)
    await world.says_on_mp(FOLLOWER, "你好，在吗")
    await world.settle()
    assert world.mp.deliveries == []
    assert world.mp.calls_to("message/custom/send") == []
    assert await world.rows(Enrollment) == []
    assert await world.rows(OutboxRow) == []


async def test_a_follower_from_before_the_toolkit_is_answered_too(world: World) -> None:
    world.mp.follow(FOLLOWER)  # followed long ago: no subscribe callback reaches us
    await world.says_on_mp(FOLLOWER, "价格是多少")
    await world.settle()
    assert len(world.mp.delivered_to(FOLLOWER)) == 1
