"""group_welcome.yaml end to end: a customer joins a customer group and their owner is asked to
welcome them there (a task card with the group's name); quiet hours hold a join at night back
to 09:00."""

from __future__ import annotations

from datetime import timedelta

from store.models import Enrollment, Task
from tests.e2e.conftest import local
from tests.support.e2e import STAFF, World

CUSTOMER = "wmGroupJoiner000000000000001"
GROUP = "wrWelcomeGroup00000000000001"
TITLE = "新成员入群，请打个招呼"


async def known_customer(world: World) -> None:
    await world.customer_adds(CUSTOMER, state="website", name="孙女士")
    world.wecom.add_group(GROUP, "春季花艺交流群", owner=STAFF)
    await world.settle()


async def test_the_owner_is_asked_to_welcome_the_new_member(world: World) -> None:
    await known_customer(world)
    await world.joins_group(GROUP, CUSTOMER)
    await world.advance(by=timedelta(minutes=1))

    [card] = [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == TITLE]
    assert "孙女士" in card["main_title"]["desc"]
    [task] = await world.rows(Task, title=TITLE)
    assert (
        "刚加入「春季花艺交流群」" in task.script
        and "欢迎 孙女士 加入春季花艺交流群" in task.script
    )
    assert task.group_id is not None and task.due_at == task.created_at + timedelta(hours=2)
    [enrollment] = await world.rows(Enrollment, playbook="group_welcome")
    assert enrollment.group_id == task.group_id


async def test_a_join_at_night_is_welcomed_at_nine(world: World) -> None:
    await known_customer(world)
    await world.advance(to=local(23, 22, 30))
    await world.joins_group(GROUP, CUSTOMER)
    await world.advance(to=local(24, 8, 59))
    assert [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == TITLE] == []
    await world.advance(to=local(24, 9, 1))
    [task] = await world.rows(Task, title=TITLE)
    assert task.created_at == local(24, 9)


async def test_a_staff_member_joining_is_not_welcomed(world: World) -> None:
    await known_customer(world)
    world.wecom.add_staff("wangwu", "王五")
    await world.joins_group(GROUP, "wangwu")
    await world.advance(by=timedelta(minutes=1))
    assert await world.rows(Enrollment, playbook="group_welcome") == []
    assert await world.rows(Task, title=TITLE) == []
