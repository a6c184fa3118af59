"""Fan-out of a schedule fire: the audience enrolled in batches, resumable from the cursor;
date fields matched on the local day."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from sop.engine.fanout import FanOut, is_anniversary, take_fire
from store.models import CronFire, Enrollment
from tests.sop.engine.harness import ZONE, Harness
from tests.support.clock import ManualClock
from tests.support.database import Database

FIRE = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def _fanout(h: Harness, batch: int = 2) -> FanOut:
    return FanOut(h.db.sessions, lambda: h.catalog, h.settings, ZONE, h.clock.now, batch)


def test_anniversaries_accept_both_forms_and_move_feb_29() -> None:
    assert is_anniversary("11-23", date(2026, 11, 23))
    assert is_anniversary("1990-11-23", date(2026, 11, 23))
    assert is_anniversary("02-29", date(2026, 2, 28))
    assert not is_anniversary("02-29", date(2028, 2, 28))
    assert not is_anniversary("someday", date(2026, 11, 23))
    assert not is_anniversary(None, date(2026, 11, 23))


async def test_fanout_resumes_after_the_cursor(db: Database, clock: ManualClock) -> None:
    h = Harness(db, clock)
    await h.playbook("weekly", trigger={"schedule": {"cron": "0 9 * * 1"}}, steps=[{"tag": "x"}])
    ids = [await h.customer(f"wm{n}") for n in range(5)]
    async with db.sessions.begin() as session:
        fire_id = await take_fire(session, "playbook:weekly", FIRE, now=clock.now())
        assert fire_id is not None
        fire = await session.get(CronFire, fire_id)
        assert fire is not None
        fire.cursor = ids[1]  # a crash after the first batch had committed
    assert await _fanout(h).run(fire_id, "weekly", FIRE) == 3
    enrolled = await h._all(select(Enrollment.customer_id))
    assert sorted(enrolled) == ids[2:]
    async with db.sessions() as session:
        done = await session.get(CronFire, fire_id)
        assert done is not None
        assert (done.cursor, done.finished_at) == (ids[-1], clock.now())
    assert await _fanout(h).run(fire_id, "weekly", FIRE) == 0  # finished: nothing more


async def test_date_field_enrolls_those_whose_day_it_is(db: Database, clock: ManualClock) -> None:
    h = Harness(db, clock)
    await h.playbook(
        "birthday",
        marketing=False,
        trigger={"schedule": {"date_field": "birthday", "at": "09:00"}},
        steps=[{"tag": "x"}],
    )
    today = await h.customer("wm1", custom_fields={"birthday": "1990-11-23"})
    await h.customer("wm2", custom_fields={"birthday": "11-24"})
    await h.customer("wm3")
    async with db.sessions.begin() as session:
        fire_id = await take_fire(session, "playbook:birthday", FIRE, now=clock.now())
    assert fire_id is not None
    assert await _fanout(h).run(fire_id, "birthday", FIRE) == 1

    assert list(await h._all(select(Enrollment.customer_id))) == [today]
