"""A welcome message does not queue behind a backlog: the first steps that just fell due are
claimed before older rows (the welcome code lives 20 seconds), and the backlog still gets
the rest of every claim."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select

from sop.delivery.messages import WELCOME
from sop.engine.agenda import claim
from store.models import AgendaItem, AgendaState, Customer, Enrollment, StepRun
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database

#: Old due rows (first steps due an hour ago) and newer ones (second steps and a cron's
#: first steps, due in the last 20 seconds): thousands in all.
OLD, CHAINED, FAN_OUT = 2_000, 1_500, 300


async def _backlog(h: Harness) -> None:
    """Due agenda rows of a tag playbook, written in bulk as a busy engine leaves them."""
    await h.playbook("backlog", steps=[{"tag": "a"}, {"tag": "b"}])
    version = h.catalog.latest("backlog").version_id
    now = h.clock.now()
    ages = (
        [(1, timedelta(hours=1))] * OLD
        + [(2, timedelta(seconds=5))] * CHAINED
        + [(1, timedelta(seconds=10))] * FAN_OUT
    )
    async with h.db.sessions.begin() as session:
        customers = [
            {"external_userid": f"wmBacklog{n}", "created_at": now} for n in range(len(ages))
        ]
        await session.execute(insert(Customer), customers)
        backlog = Customer.external_userid.like("wmBacklog%")
        ids = (
            await session.scalars(select(Customer.id).where(backlog).order_by(Customer.id))
        ).all()
        enrollments = [
            {
                "key": f"backlog:{n}",
                "playbook": "backlog",
                "version_id": version,
                "customer_id": customer_id,
                "staff_userid": "alice",
                "context": {},
                "seq": seq,
                "enrolled_at": now,
                "updated_at": now,
            }
            for n, (customer_id, (seq, _)) in enumerate(zip(ids, ages, strict=True))
        ]
        await session.execute(insert(Enrollment), enrollments)
        mine = Enrollment.playbook == "backlog"
        enrolled = (
            await session.scalars(select(Enrollment.id).where(mine).order_by(Enrollment.id))
        ).all()
        rows = [
            _due_row(enrollment_id, seq, step_index=seq - 1, due_at=now - age, now=now)
            for enrollment_id, (seq, age) in zip(enrolled, ages, strict=True)
        ]
        await session.execute(insert(AgendaItem), rows)


def _due_row(
    enrollment_id: int, seq: int, *, step_index: int, due_at: datetime, now: datetime
) -> dict[str, object]:
    return {
        "enrollment_id": enrollment_id,
        "seq": seq,
        "step_index": step_index,
        "due_at": due_at,
        "state": AgendaState.PENDING,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


async def _welcome(h: Harness) -> int:
    await h.playbook("hi", steps=[{"send": {"channel": "welcome", "text": "Welcome!"}}])
    context = {"welcome_code": "W1", "added_at": h.clock.now().isoformat()}
    return await h.enroll("hi", await h.customer("wmNew"), key="hi:1", context=context)


async def test_a_welcome_behind_thousands_of_due_steps_runs_in_the_first_claim(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.customer("wmStaff", owner="alice")  # the backlog's owner exists
    await _backlog(h)
    welcome = await _welcome(h)

    ran = await h.runner.run_claim()

    assert ran == h.settings.batch_size
    assert [(r.channel, r.recipient) for r in await h.outbox() if r.channel == WELCOME] == [
        (WELCOME, "wmNew")
    ]
    assert await h.outcomes(welcome) == [("1", "done")]
    async with db.sessions() as session:
        traced = (await session.scalars(select(StepRun.enrollment_id))).all()
    # The fan-out's fresh first steps and the welcome fill the lane (half), newest first;
    # the oldest rows of the backlog fill the other half.
    assert len(traced) == h.settings.batch_size


async def test_the_lane_takes_at_most_half_a_claim_the_oldest_rows_the_rest(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await _backlog(h)
    async with db.sessions() as session:
        claimed = await claim(await session.connection(), now=clock.now(), limit=10)
    due_at = [item.due_at for item, _, _ in claimed]
    assert (
        due_at
        == [clock.now() - timedelta(seconds=10)] * 5 + [clock.now() - timedelta(hours=1)] * 5
    )
