"""A delete_user callback publishes StaffLeft; without a successor nothing moves, and the
audit log says what to do."""

from __future__ import annotations

from sqlalchemy import select

from sop.events import EventBus, StaffLeft
from sop.staff import audit
from sop.staff.departure import subscribe_departures
from sop.staff.settings import StaffSettings, Successor
from store.models import Task, TaskState, TransferJob
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.transfers import LEAVER, SALES, seed


def test_successor_by_department_then_default() -> None:
    successor = Successor(default="boss", by_department={SALES: "lisi", 9: "wangwu"})
    assert successor.for_member(9, [SALES, 9]) == "wangwu"
    assert successor.for_member(None, [1, SALES]) == "lisi"
    assert successor.for_member(1, [1]) == "boss"
    assert Successor().for_member(SALES, [SALES]) is None


async def test_no_successor_moves_nothing_and_says_so(db: Database, clock: ManualClock) -> None:
    await seed(db, clock.now())
    bus = EventBus()
    subscribe_departures(bus, StaffSettings(), clock)
    harness = Harness(db, clock, bus=bus)
    delete = samples.event("change_contact", ChangeType="delete_user", UserID=LEAVER)
    await harness.feed(delete)
    await harness.feed(delete)  # the platform's retry: the member already left
    assert [e.staff_userid for e in harness.published(StaffLeft)] == [LEAVER]
    async with db.sessions() as session:
        assert list(await session.scalars(select(TransferJob))) == []
        assert [t.state for t in await session.scalars(select(Task))] == [TaskState.OPEN]
        logged = await audit.entries(session, subject=f"staff:{LEAVER}")
    assert [e.action for e in logged] == ["no_successor"]
    assert "scrm staff transfer zhangsan" in logged[0].detail["fix"]
