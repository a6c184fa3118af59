"""onboarding.yaml end to end: a customer added through the expo channel code is welcomed at
once with the add event's WelcomeCode, the owner gets a task card at 10:00 the next morning,
and the customer's reply (tag 已互动, mirrored to WeCom) or three days of silence (a reminder
card) decides the rest."""

from __future__ import annotations

from datetime import timedelta

from store.models import Enrollment, EnrollmentState, OutboxRow, Task, TaskState
from tests.e2e.conftest import local
from tests.support.e2e import STAFF, World

CUSTOMER = "wmOnboardingCustomer000000001"
FIRST_CALL = "新客户首次跟进"
REMIND = "新客户三天未回复"


async def added_through_expo(world: World) -> str:
    code = await world.customer_adds(CUSTOMER, state="expo2026", name="李女士")
    await world.settle()
    return code


async def onboarding(world: World) -> Enrollment:
    return await world.one(Enrollment, playbook="onboarding")


async def test_welcome_at_once_then_a_task_card_at_ten_the_next_morning(world: World) -> None:
    added_at = world.now
    code = await added_through_expo(world)

    [welcome] = world.deliveries("externalcontact/send_welcome_msg", CUSTOMER)
    assert welcome.body["welcome_code"] == code
    assert welcome.at - added_at < timedelta(seconds=20)
    assert welcome.body["text"]["content"].startswith("李女士好！我是张三")
    assert world.cards_to(STAFF) == []

    await world.advance(to=local(24, 9, 59))
    assert world.cards_to(STAFF) == [], "nothing before 10:00 the next morning"
    await world.advance(to=local(24, 10, 1))

    [card] = [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == FIRST_CALL]
    assert card["card_type"] == "button_interaction"
    assert "李女士" in card["main_title"]["desc"] and "expo2026" in card["main_title"]["desc"]
    [sent] = [
        d for d in world.deliveries("message/send", STAFF) if d.body.get("template_card") == card
    ]
    assert local(24, 10) <= sent.at < local(24, 10, 1)
    [task] = await world.rows(Task, title=FIRST_CALL)
    assert task.staff_userid == STAFF and task.state is TaskState.OPEN
    assert task.due_at == local(24, 14)  # due: 4h
    assert "昨天在展会上聊得很愉快" in task.script
    assert (await onboarding(world)).waiting.value == "reply"


async def test_a_reply_takes_the_engaged_branch_and_the_tag_reaches_wecom(world: World) -> None:
    await added_through_expo(world)
    await world.advance(to=local(25, 15))
    await world.says_to_bot(CUSTOMER, "你好，方案可以发我看看")
    await world.settle()

    [mark] = [c for c in world.wecom.calls_to("externalcontact/mark_tag") if c.errcode == 0]
    assert mark.json["userid"] == STAFF and mark.json["external_userid"] == CUSTOMER
    follow = world.wecom.customers[CUSTOMER].follows[STAFF]
    assert world.wecom.tag_named("已互动").id in follow.tag_ids
    enrollment = await onboarding(world)
    assert enrollment.state is EnrollmentState.COMPLETED

    await world.advance(to=local(28, 12))
    titles = [c["main_title"]["title"] for c in world.cards_to(STAFF)]
    assert REMIND not in titles and titles.count(FIRST_CALL) == 1


async def test_three_days_of_silence_take_the_timeout_branch(world: World) -> None:
    await added_through_expo(world)
    await world.advance(to=local(27, 9, 59))
    assert REMIND not in [c["main_title"]["title"] for c in world.cards_to(STAFF)]
    await world.advance(to=local(27, 10, 1))

    [remind] = [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == REMIND]
    assert "三天未回复" in remind["main_title"]["desc"]
    mine = [t.title for t in await world.rows(Task) if t.origin.startswith("playbook:onboarding")]
    assert mine == [FIRST_CALL, REMIND]
    enrollment = await onboarding(world)
    assert enrollment.state is EnrollmentState.COMPLETED
    assert world.wecom.calls_to("externalcontact/mark_tag") == []


async def test_a_customer_from_another_channel_is_not_onboarded(world: World) -> None:
    await world.customer_adds(CUSTOMER, state="website", name="王先生")
    await world.settle()
    assert world.deliveries("externalcontact/send_welcome_msg") == []
    assert await world.rows(Enrollment, playbook="onboarding") == []
    assert await world.rows(OutboxRow) == []
