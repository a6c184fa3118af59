"""Digests: the daily one from the tables (late, due, new, waiting), the weekly team figures."""

from __future__ import annotations

from datetime import timedelta

from sop.settings import TaskEscalation, TaskSettings
from sop.tasks.digests import DailyDigest
from sop.tasks.managers import Managers
from sop.tasks.weekly import WeeklyDigest
from store.models import Direction, Interaction
from tests.sop.tasks.world import MANAGER, STAFF, ZONE, customer, local, queued, staff, task, texts
from tests.support.clock import ManualClock
from tests.support.database import Database

SETTINGS = TaskSettings(escalation=TaskEscalation(managers={STAFF: MANAGER, "wangwu": MANAGER}))


async def said(db: Database, customer_id: int, at: object, direction: Direction) -> None:
    async with db.sessions.begin() as session:
        session.add(
            Interaction(
                customer_id=customer_id,
                direction=direction,
                kind="message",
                summary="…",
                source="test",
                occurred_at=at,
                recorded_at=at,
            )
        )


async def test_the_daily_digest_sections(db: Database, clock: ManualClock) -> None:
    clock.set(local(22, 9))
    waiting = await customer(db, clock, "Wang")
    answered = await customer(db, clock, "Zhao")
    await said(db, waiting, local(22, 9), Direction.INBOUND)
    await said(db, answered, local(22, 9), Direction.INBOUND)
    await said(db, answered, local(22, 10), Direction.OUTBOUND)
    clock.set(local(23, 8))
    await customer(db, clock, "New", added=local(23, 7))
    late = await task(db, clock, "逾期", due_in=timedelta(minutes=-30))
    today = await task(db, clock, "今天", due_in=timedelta(hours=5))
    await task(db, clock, "明天", due_in=timedelta(days=1))
    clock.set(local(23, 9))
    assert await DailyDigest(db.sessions, SETTINGS, clock, ZONE).run() == 1
    [digest] = texts(await queued(db, prefix="tasks:digest:zhangsan:2026-11-23"))
    assert digest.splitlines() == [
        "📋 Your day, 2026-11-23",
        "Overdue (1)",
        f"• #{late} 逾期, due 11-23 07:30",
        "Due today (1)",
        f"• #{today} 今天, due 11-23 13:00",
        "New customers since yesterday (1)",
        "• New",
        "Waiting for a reply over 24 h (1)",
        "• Wang: last message 11-22 09:00 (24 h)",
        "Reply `tasks` for your open tasks, `done 42` when one is done.",
    ]
    assert await DailyDigest(db.sessions, SETTINGS, clock, ZONE).run() == 0


async def test_the_weekly_digest_gives_the_manager_the_team(
    db: Database, clock: ManualClock
) -> None:
    from sop.tasks import state

    await staff(db, clock, STAFF, "张三")
    await staff(db, clock, "wangwu", "王五")
    on_time = await task(db, clock, due_in=timedelta(hours=2))
    await task(db, clock, due_in=timedelta(hours=1))
    await task(db, clock, owner="wangwu", due_in=timedelta(days=1))
    clock.advance(timedelta(hours=1))
    async with db.sessions.begin() as session:
        found = await state.task_for_update(session, on_time)
        assert found is not None
        await state.done(session, found, by=STAFF, now=clock.now())
    clock.advance(timedelta(days=1))
    weekly = WeeklyDigest(db.sessions, Managers(SETTINGS.escalation, clock), clock, ZONE)
    assert await weekly.run() == 1
    [digest] = texts(await queued(db, prefix=f"tasks:weekly:{MANAGER}:"))
    assert digest.splitlines()[1:] == [
        "• 王五: 1 tasks, 0 done (0 on time), 1 late now, 0 escalated; customers +0 -0",
        "• 张三: 2 tasks, 1 done (1 on time), 1 late now, 0 escalated; customers +0 -0",
        "Team (2): 3 tasks, 1 done (1 on time), 2 late now, 0 escalated; customers +0 -0",
    ]
    assert await weekly.run() == 0
