"""The staff report's figures on a seeded timeline, on both backends."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from sop.staff.report import percentile, staff_report
from store.models import (
    CustomerStaff,
    Direction,
    FollowState,
    Interaction,
    RemovedBy,
    Task,
    TaskState,
)
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.engine_factories import add_customer, add_staff


def entry(customer_id: int, at: datetime, direction: Direction, staff: str | None) -> Interaction:
    return Interaction(
        customer_id=customer_id,
        staff_userid=staff,
        direction=direction,
        kind="message",
        source="test",
        occurred_at=at,
        recorded_at=at,
    )


def task(n: int, staff: str, due: datetime, state: TaskState, closed: datetime | None) -> Task:
    return Task(
        key=f"t{n}",
        staff_userid=staff,
        origin="test",
        title="t",
        due_at=due,
        state=state,
        history=[],
        created_at=due - timedelta(days=1),
        updated_at=due,
        closed_at=closed,
    )


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([30, 10, 20], 50) == 20
    assert percentile(range(1, 11), 90) == 9
    assert percentile([5.0], 90) == 5.0


async def test_staff_report_figures(db: Database, clock: ManualClock) -> None:
    t0 = clock.now()
    m = timedelta(minutes=1)
    async with db.sessions.begin() as s:
        await add_staff(s, "amy", now=t0, main_department=2)
        await add_staff(s, "bob", now=t0, main_department=2)
        a = await add_customer(s, "wmA", now=t0, owner="amy")
        b = await add_customer(s, "wmB", now=t0, owner="bob")
        s.add_all(
            [
                # amy: two messages in a row answered after 10 min (counted once), then 30 min
                entry(a.id, t0, Direction.INBOUND, "amy"),
                entry(a.id, t0 + 5 * m, Direction.INBOUND, "amy"),
                entry(a.id, t0 + 10 * m, Direction.OUTBOUND, "amy"),
                entry(a.id, t0 + 60 * m, Direction.INBOUND, "amy"),
                entry(a.id, t0 + 90 * m, Direction.OUTBOUND, "amy"),
                # bob: answered by a done task after 20 min, then never
                entry(b.id, t0, Direction.INBOUND, "bob"),
                entry(b.id, t0 + 120 * m, Direction.INBOUND, "bob"),
                # outside the period
                entry(b.id, t0 - timedelta(days=2), Direction.INBOUND, "bob"),
            ]
        )
        done_b = task(1, "bob", t0 + 30 * m, TaskState.DONE, t0 + 20 * m)
        done_b.customer_id = b.id
        s.add_all(
            [
                done_b,
                task(2, "amy", t0 + 60 * m, TaskState.DONE, t0 + 90 * m),
                task(3, "amy", t0 + 60 * m, TaskState.EXPIRED, t0 + 61 * m),
                task(4, "amy", t0 + 60 * m, TaskState.REASSIGNED, t0 + 1 * m),
                task(5, "amy", t0 + timedelta(days=9), TaskState.OPEN, None),
            ]
        )
        s.add(
            CustomerStaff(
                customer_id=a.id,
                staff_userid="bob",
                state=FollowState.REMOVED,
                added_at=t0 - timedelta(days=30),
                removed_at=t0 + m,
                removed_by=RemovedBy.CUSTOMER,
            )
        )
        s.add(
            CustomerStaff(
                customer_id=b.id,
                staff_userid="amy",
                state=FollowState.REMOVED,
                added_at=t0 - timedelta(days=30),
                removed_at=t0 + m,  # a transfer: no removed_by, not a loss
            )
        )
    async with db.sessions() as s:
        result = await staff_report(s, t0 - timedelta(hours=1), t0 + timedelta(days=1))
    rows = {r["who"]: r for r in result.rows()}
    assert rows["amy"] | {} == {
        "who": "amy",
        "team": "dept 2",
        "messages": 2,
        "unanswered": 0,
        "median_response_s": 600.0,
        "p90_response_s": 1800.0,
        "tasks_due": 2,
        "done_on_time": 0,
        "done_late": 1,
        "ignored": 1,
        "customers_added": 1,
        "customers_lost": 0,
    }
    assert (rows["bob"]["messages"], rows["bob"]["unanswered"]) == (2, 1)
    assert rows["bob"]["median_response_s"] == 1200.0
    assert (rows["bob"]["done_on_time"], rows["bob"]["customers_lost"]) == (1, 1)
    team = rows["team dept 2"]
    assert (team["messages"], team["median_response_s"], team["customers_added"]) == (
        4,
        1200.0,
        2,
    )
    out = io.StringIO()
    result.write_csv(out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("who,team,messages") and len(lines) == 4
