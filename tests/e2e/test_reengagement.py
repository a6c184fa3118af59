"""reengagement.yaml end to end: at the daily 10:00 fire, customers silent for more than 30
days get a come-back mass message from their owner, and three days later the owner a call
task; a customer who spoke recently is left alone, and one who answers leaves the playbook."""

from __future__ import annotations

from datetime import timedelta

from store.models import Enrollment, EnrollmentState, Task
from tests.e2e.conftest import local
from tests.support.e2e import STAFF, World

SILENT = "wmSilentCustomer0000000000001"
ACTIVE = "wmActiveCustomer0000000000001"
CALL = "沉默客户回访"


def offers(world: World) -> list[str]:
    """Customers who got the come-back offer (accepted mass messages)."""
    return [
        call.json["external_userid"][0]
        for call in world.wecom.calls_to("externalcontact/add_msg_template")
        if call.errcode == 0 and "好久不见" in call.json["text"]["content"]
    ]


async def two_customers_talking(world: World) -> None:
    """Both are added and say hello on day one; only ACTIVE speaks again on day 20."""
    for external_userid, name in [(SILENT, "冯先生"), (ACTIVE, "陈女士")]:
        await world.customer_adds(external_userid, state="website", name=name)
        await world.says_to_bot(external_userid, "你好")
    await world.settle()
    await world.advance(to=local(12, 15, month=12))  # day 20
    await world.says_to_bot(ACTIVE, "最近有什么新活动吗")
    await world.settle()


async def test_the_silent_customer_is_won_back_and_the_active_one_left_alone(
    world: World,
) -> None:
    await two_customers_talking(world)
    await world.advance(to=local(23, 10, 1, month=12))  # day 30: not silent for 30 days yet
    assert offers(world) == []
    await world.advance(to=local(24, 10, 1, month=12))  # day 31

    assert offers(world) == [SILENT]
    [enrollment] = await world.rows(Enrollment, playbook="reengagement")
    silent = await world.customer(SILENT)
    assert enrollment.customer_id == silent.id and enrollment.state is EnrollmentState.ACTIVE

    await world.advance(to=local(27, 10, 1, month=12))
    [card] = [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == CALL]
    assert "冯先生" in card["main_title"]["desc"]
    [task] = await world.rows(Task, title=CALL)
    assert task.customer_id == silent.id
    assert (await world.one(Enrollment, playbook="reengagement")).state is (
        EnrollmentState.COMPLETED
    )


async def test_an_answer_ends_the_come_back_attempt(world: World) -> None:
    await two_customers_talking(world)
    await world.advance(to=local(24, 10, 1, month=12))
    assert offers(world) == [SILENT]
    await world.advance(by=timedelta(hours=5))
    await world.says_to_bot(SILENT, "了解")
    await world.advance(to=local(28, 12, month=12))

    enrollment = await world.one(Enrollment, playbook="reengagement")
    assert enrollment.state is EnrollmentState.EXITED
    assert enrollment.goal_met_at is not None
    assert await world.rows(Task, title=CALL) == []


async def test_a_customer_added_yesterday_is_not_silent(world: World) -> None:
    await world.customer_adds(SILENT, state="website", name="冯先生")
    await world.advance(to=local(24, 10, 1))
    assert offers(world) == []
    assert await world.rows(Enrollment, playbook="reengagement") == []
