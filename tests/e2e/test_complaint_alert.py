"""complaint_alert.yaml end to end: a customer complains in a group (an @-mention of the AI
bot, the way group messages reach the toolkit); the owner gets a task card at once, due in
30 minutes, with the escalation time of ``escalate_after: 1h``; one alert an hour per
customer."""

from __future__ import annotations

from datetime import timedelta

from store.models import Enrollment, Task, TaskState
from tests.support.e2e import STAFF, World

CUSTOMER = "wmComplainingCustomer00000001"
GROUP = "wrComplaintGroup0000000000001"
TITLE = "客户投诉，请立即处理"


async def customer_in_a_group(world: World) -> None:
    await world.customer_adds(CUSTOMER, state="website", name="赵先生")
    world.wecom.add_group(GROUP, "售后服务群", owner=STAFF)
    await world.joins_group(GROUP, CUSTOMER)
    await world.settle()


async def complaint_tasks(world: World) -> list[Task]:
    return list(await world.rows(Task, title=TITLE))


async def test_a_complaint_alerts_the_owner_at_once(world: World) -> None:
    await customer_in_a_group(world)
    said_at = world.now
    await world.says_to_bot(CUSTOMER, "@helper 我要投诉，客服一直不回复", chat_id=GROUP)
    await world.advance(by=timedelta(minutes=1))  # staff cards keep clear of :00 and :30

    [card] = [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == TITLE]
    assert "赵先生" in card["main_title"]["desc"]
    [task] = await complaint_tasks(world)
    assert task.state is TaskState.OPEN and task.staff_userid == STAFF
    assert "在群「售后服务群」提到了“投诉”" in task.script
    assert "客服一直不回复" in task.script
    assert task.due_at == said_at + timedelta(minutes=30)
    assert task.escalate_at == said_at + timedelta(minutes=30) + timedelta(hours=1)


async def test_one_alert_an_hour_per_customer(world: World) -> None:
    await customer_in_a_group(world)
    await world.says_to_bot(CUSTOMER, "@helper 投诉！", chat_id=GROUP)
    await world.settle()
    await world.advance(by=timedelta(minutes=20))
    await world.says_to_bot(CUSTOMER, "@helper 再不处理我就给差评", chat_id=GROUP)
    await world.settle()
    assert len(await complaint_tasks(world)) == 1

    await world.advance(by=timedelta(hours=1))
    await world.says_to_bot(CUSTOMER, "@helper 我要退款", chat_id=GROUP)
    await world.settle()
    tasks = await complaint_tasks(world)
    assert len(tasks) == 2 and "退款" in tasks[1].script
    assert len(await world.rows(Enrollment, playbook="complaint_alert")) == 2


async def test_a_complaint_at_night_is_not_held_back(world: World) -> None:
    await customer_in_a_group(world)
    await world.advance(by=timedelta(hours=6))  # 23:00 in Shanghai: no quiet hours here
    said_at = world.now
    await world.says_to_bot(CUSTOMER, "@helper 你们这是骗人", chat_id=GROUP)
    await world.advance(by=timedelta(minutes=1))
    [task] = await complaint_tasks(world)
    assert task.created_at == said_at
    assert [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == TITLE]


async def test_a_complaint_still_open_at_its_escalation_time_is_escalated(world: World) -> None:
    await customer_in_a_group(world)
    await world.says_to_bot(CUSTOMER, "@helper 投诉", chat_id=GROUP)
    await world.advance(by=timedelta(minutes=1))
    [task] = await complaint_tasks(world)
    assert task.escalate_at is not None
    first = len(world.deliveries("message/send"))
    assert first >= 1
    await world.advance(to=task.escalate_at + timedelta(minutes=5))
    later = world.deliveries("message/send")[first:]
    assert later, "the task is still open at its escalation time and nobody was told"
