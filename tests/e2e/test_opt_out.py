"""Opting out end to end: a customer in a marketing playbook who says 退订 is marked, gets one
confirmation (a mass message from their owner, the only WeCom way back to them), leaves the
playbook, and is not enrolled in marketing again; saying it twice confirms once."""

from __future__ import annotations

from datetime import timedelta

from store.models import Enrollment, EnrollmentState, Interaction, Task
from tests.e2e.conftest import local
from tests.support.e2e import World

CUSTOMER = "wmOptingOutCustomer000000001"
CONFIRMATION = "您已退订"


def confirmations(world: World) -> list[str]:
    return [
        call.json["external_userid"][0]
        for call in world.wecom.calls_to("externalcontact/add_msg_template")
        if call.errcode == 0 and call.json["text"]["content"].startswith(CONFIRMATION)
    ]


async def test_opt_out_marks_confirms_once_and_leaves_marketing(world: World) -> None:
    await world.customer_adds(CUSTOMER, state="website", name="褚先生")
    await world.says_to_bot(CUSTOMER, "你好")
    await world.advance(to=local(24, 10, 1, month=12))  # silent for 31 days: re-engaged
    [enrollment] = await world.rows(Enrollment, playbook="reengagement")
    assert enrollment.state is EnrollmentState.ACTIVE

    await world.advance(by=timedelta(hours=2))
    await world.says_to_bot(CUSTOMER, " 退订 ")
    await world.settle()
    await world.says_to_bot(CUSTOMER, "退订")
    await world.advance(to=local(28, 12, month=12))

    customer = await world.customer(CUSTOMER)
    assert customer.opted_out_at is not None
    assert confirmations(world) == [CUSTOMER]
    enrollment = await world.one(Enrollment, playbook="reengagement")
    assert enrollment.state is EnrollmentState.EXITED and enrollment.end_reason == "opted out"
    assert await world.rows(Task, title="沉默客户回访") == []
    kinds = [i.kind for i in await world.rows(Interaction, customer_id=customer.id)]
    assert kinds.count("opted_out") == 2  # both said, one changed anything

    # Months later the customer is silent again, but opted out: no marketing fire takes them.
    await world.advance(to=local(24, 10, 1, month=12) + timedelta(days=61))
    assert len(await world.rows(Enrollment, playbook="reengagement")) == 1
