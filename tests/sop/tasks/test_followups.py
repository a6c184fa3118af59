"""Follow-ups on the manual clock: reminders, quiet hours, escalation, snoozes ending, expiry."""

from __future__ import annotations

from datetime import timedelta

from bot.channels.leaders import WecomLeaders
from bot.wecom import WecomClient
from sop.settings import TaskEscalation, TaskSettings
from sop.tasks.followups import FollowUps
from sop.tasks.managers import LeaderDirectory, Managers
from store.models import TaskState
from tests.sop.tasks.world import (
    MANAGER,
    STAFF,
    ZONE,
    customer,
    get,
    local,
    queued,
    staff,
    task,
    texts,
)
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom

CONFIGURED = TaskSettings(escalation=TaskEscalation(managers={STAFF: MANAGER}))


def followups(
    db: Database,
    clock: ManualClock,
    settings: TaskSettings = CONFIGURED,
    directory: LeaderDirectory | None = None,
) -> FollowUps:
    managers = Managers(settings.escalation, clock, directory)
    return FollowUps(db.sessions, settings, clock, ZONE, managers)


async def test_one_reminder_per_member_listing_what_is_late(
    db: Database, clock: ManualClock
) -> None:
    alice = await customer(db, clock, "Alice")
    first = await task(db, clock, "回访", due_in=timedelta(minutes=30), customer_id=alice)
    second = await task(db, clock, "报价", due_in=timedelta(minutes=40))
    run = followups(db, clock)
    clock.set(local(23, 17, 44))
    assert (await run.run_once()).reminded == 0, "15 minutes past due, not before"
    clock.set(local(23, 17, 56))
    assert (await run.run_once()).reminded == 2
    [reminder] = await queued(db, prefix="tasks:remind:")
    assert reminder.recipient == STAFF and reminder.due_at == clock.now()
    assert texts([reminder])[0].splitlines()[:3] == [
        "⏰ 2 task(s) past due:",
        f"#{first} 回访 (Alice), due 11-23 17:30",
        f"#{second} 报价, due 11-23 17:40",
    ]
    assert (await get(db, first)).reminded_at == clock.now()
    clock.advance(timedelta(minutes=5))
    assert (await run.run_once()).reminded == 0
    assert len(await queued(db, prefix="tasks:remind:")) == 1


async def test_escalation_waits_for_its_time_and_the_grace_after_the_reminder(
    db: Database, clock: ManualClock
) -> None:
    await staff(db, clock, STAFF, "张三")
    late = await task(
        db, clock, "投诉", due_in=timedelta(minutes=30), escalate_after=timedelta(hours=1)
    )
    run = followups(db, clock)
    clock.set(local(23, 17, 50))
    await run.run_once()  # reminded at 17:50
    clock.set(local(23, 18, 29))
    assert (await run.run_once()).escalated == 0, "escalate_at is 18:30"
    clock.set(local(23, 18, 31))
    assert (await run.run_once()).escalated == 1
    [escalation] = await queued(db, prefix="tasks:escalate:")
    assert escalation.recipient == MANAGER
    assert texts([escalation])[0].splitlines() == [
        "⚠️ 张三 (zhangsan) has 1 late task(s), reminded:",
        f"#{late} 投诉, due 11-23 17:30",
    ]
    escalated = await get(db, late)
    assert (escalated.escalated_to, escalated.escalated_at) == (MANAGER, clock.now())
    assert escalated.history[-1]["note"] == "escalated to lisi"
    clock.advance(timedelta(hours=1))
    assert (await run.run_once()).escalated == 0


async def test_at_night_the_reminder_waits_for_morning_and_the_escalation_after_it(
    db: Database, clock: ManualClock
) -> None:
    clock.set(local(23, 20, 30))
    late = await task(db, clock, due_in=timedelta(minutes=20))  # due 20:50
    run = followups(db, clock)
    clock.set(local(23, 21, 10))
    await run.run_once()
    [reminder] = await queued(db, prefix="tasks:remind:")
    assert reminder.due_at == local(24, 9)
    clock.set(local(24, 9, 10))  # past due + 2h long ago, but the reminder is 10 minutes old
    assert (await run.run_once()).escalated == 0
    clock.set(local(24, 9, 31))
    assert (await run.run_once()).escalated == 1
    assert (await get(db, late)).escalated_at == clock.now()


async def test_the_department_leader_from_wecom_is_the_manager(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    fake_wecom.add_staff("boss", "王总", department=[1])
    fake_wecom.add_staff(MANAGER, "李四", department=[2])
    fake_wecom.add_staff(STAFF, "张三", department=[2])
    fake_wecom.add_department(1, "公司", leaders=["boss"])
    fake_wecom.add_department(2, "销售部", parent=1, leaders=[MANAGER])
    managers = Managers(TaskEscalation(), clock, WecomLeaders(wecom_client))
    assert await managers.manager_of(STAFF) == MANAGER
    assert await managers.manager_of(MANAGER) == "boss", "a leader goes one department up"
    calls = len(fake_wecom.calls)
    assert await managers.manager_of(STAFF) == MANAGER
    assert len(fake_wecom.calls) == calls, "asked once an hour"

    await task(db, clock, due_in=timedelta(minutes=1))
    run = followups(db, clock, TaskSettings(), WecomLeaders(wecom_client))
    clock.advance(timedelta(minutes=20))
    await run.run_once()
    clock.advance(timedelta(hours=3))
    assert (await run.run_once()).escalated == 1
    [escalation] = await queued(db, prefix="tasks:escalate:")
    assert escalation.recipient == MANAGER


async def test_nobody_to_escalate_to_is_noted_once(db: Database, clock: ManualClock) -> None:
    late = await task(db, clock, due_in=timedelta(minutes=1))
    run = followups(db, clock, TaskSettings())
    clock.advance(timedelta(minutes=20))
    await run.run_once()
    clock.advance(timedelta(hours=3))
    assert (await run.run_once()).escalated == 1
    assert await queued(db, prefix="tasks:escalate:") == []
    assert (await get(db, late)).history[-1]["note"] == "no manager to escalate to"


async def test_a_snooze_that_ends_sends_the_card_again(db: Database, clock: ManualClock) -> None:
    from sop.tasks import state

    task_id = await task(db, clock)
    async with db.sessions.begin() as session:
        found = await state.task_for_update(session, task_id)
        assert found is not None
        state.snooze(found, clock.now() + timedelta(hours=1), by=STAFF, now=clock.now())
    run = followups(db, clock)
    clock.advance(timedelta(minutes=59))
    assert (await run.run_once()).woken == 0
    clock.advance(timedelta(minutes=1))
    assert (await run.run_once()).woken == 1
    assert (await get(db, task_id)).state is TaskState.OPEN
    first, again = await queued(db, prefix=f"task:{task_id}:card")
    assert again.payload["template_card"]["task_id"] == f"task-{task_id}-r3"
    assert (
        again.payload["template_card"]["button_list"]
        == first.payload["template_card"]["button_list"]
    )


async def test_a_task_long_past_due_expires(db: Database, clock: ManualClock) -> None:
    task_id = await task(db, clock, due_in=timedelta(hours=1))
    run = followups(db, clock)
    clock.advance(timedelta(days=7, minutes=59))
    assert (await run.run_once()).expired == 0
    clock.advance(timedelta(minutes=1))
    assert (await run.run_once()).expired == 1
    assert (await get(db, task_id)).state is TaskState.EXPIRED
