"""The APScheduler adapter: jobs for the tick and each schedule playbook; a fire taken once
however many schedulers see it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from sop.engine.fanout import FanOut
from sop.engine.scheduler import (
    CAMPAIGN_JOB_PREFIX,
    CampaignJob,
    EngineScheduler,
    crontab_days,
    fire_time_of,
    trigger_of,
)
from store.models import CronFire, Enrollment
from tests.sop.engine.harness import ZONE, Harness
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.engine_factories import playbook

WEEKLY = {"schedule": {"cron": "0 9 * * 1"}}


def _scheduler(h: Harness) -> EngineScheduler:
    fanout = FanOut(h.db.sessions, lambda: h.catalog, h.settings, ZONE, h.clock.now, 100)
    return EngineScheduler(fanout, h.clock, wake=asyncio.Event(), zone_default=ZONE)


def test_cron_runs_in_the_playbooks_zone_and_date_fields_daily_at_their_time() -> None:
    weekly = playbook("weekly", trigger=WEEKLY)
    after = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # Monday 08:00 in Shanghai
    assert trigger_of(weekly, ZONE).get_next_fire_time(None, after) == datetime(
        2026, 11, 23, 1, 0, tzinfo=UTC
    )
    sundays = playbook("sundays", trigger={"schedule": {"cron": "0 9 * * 0,7"}})
    assert trigger_of(sundays, ZONE).get_next_fire_time(None, after) == datetime(
        2026, 11, 29, 1, 0, tzinfo=UTC
    )
    assert crontab_days("1-5") == "mon-fri"
    birthday = playbook("birthday", trigger={"schedule": {"date_field": "bday", "at": "10:30"}})
    now = datetime(2026, 11, 23, 2, 30, 5, tzinfo=UTC)
    assert fire_time_of(birthday, now, ZONE) == datetime(2026, 11, 23, 2, 30, tzinfo=UTC)
    assert fire_time_of(weekly, now, ZONE) == datetime(2026, 11, 23, 2, 30, tzinfo=UTC)


async def test_a_fire_is_taken_once_by_two_schedulers(db: Database, clock: ManualClock) -> None:
    h = Harness(db, clock)
    await h.playbook("weekly", trigger=WEEKLY, steps=[{"tag": "x"}])
    for n in range(3):
        await h.customer(f"wm{n}")
    first, second = _scheduler(h), _scheduler(h)
    results = [await first.fire("weekly"), await second.fire("weekly")]
    assert results == [3, None]
    clock.advance(timedelta(seconds=30))  # the same minute: the same fire
    assert await second.fire("weekly") is None
    async with db.sessions() as session:
        assert await session.scalar(select(func.count(CronFire.id))) == 1
        assert await session.scalar(select(func.count(Enrollment.id))) == 3
    clock.advance(timedelta(days=7))
    assert await second.fire("weekly") == 0  # already enrolled, re-entry never


async def test_start_registers_the_tick_and_schedule_jobs(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook("weekly", trigger=WEEKLY, steps=[{"tag": "x"}])
    await h.playbook("event", steps=[{"tag": "x"}])
    scheduler = _scheduler(h)
    scheduler.start(1.0)
    try:
        assert scheduler.job_ids() == ["engine:resume", "engine:tick", "playbook:weekly"]
    finally:
        scheduler.shutdown()


async def test_campaign_jobs_sync_and_an_unchanged_cron_keeps_its_job(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    started: list[str] = []

    def starter(label: str) -> Callable[[datetime], Awaitable[str]]:
        async def start(fire_time: datetime) -> str:
            started.append(f"{label} {fire_time:%H:%M}")
            return label

        return start

    zone = ZoneInfo(ZONE)
    scheduler = _scheduler(h)
    scheduler.sync_campaign_jobs([CampaignJob("weekly", "0 10 * * 1", zone, starter("v1"))])
    scheduler.start(3600)
    try:
        assert scheduler.job_ids() == ["campaign:weekly", "engine:resume", "engine:tick"]
        # Stands for a fire that is due but not run yet (the loop was busy): a sync must keep it.
        pending = datetime(2030, 1, 1, tzinfo=UTC)
        assert scheduler._scheduler is not None
        scheduler._scheduler.modify_job("campaign:weekly", next_run_time=pending)

        scheduler.sync_campaign_jobs([CampaignJob("weekly", "0 10 * * 1", zone, starter("v2"))])
        assert scheduler.next_run_time("campaign:weekly") == pending
        assert await scheduler.fire_current("weekly") == "v2"  # the new definition fires
        assert started == [f"v2 {clock.now():%H:%M}"]

        daily = CampaignJob("daily", "0 9 * * *", zone, starter("d"))
        scheduler.sync_campaign_jobs(
            [CampaignJob("weekly", "0 10 * * 2", zone, starter("v3")), daily]
        )
        assert scheduler.job_ids() == [
            "campaign:daily",
            "campaign:weekly",
            "engine:resume",
            "engine:tick",
        ]
        tuesday = scheduler.next_run_time("campaign:weekly")
        assert tuesday is not None and tuesday != pending
        assert tuesday.astimezone(zone).strftime("%a %H:%M") == "Tue 10:00"

        scheduler.sync_campaign_jobs([daily])
        assert scheduler.job_ids() == ["campaign:daily", "engine:resume", "engine:tick"]
        assert await scheduler.fire_current("weekly") is None  # gone: a late fire does nothing
    finally:
        scheduler.shutdown()


async def test_a_worker_that_runs_a_fire_late_takes_the_same_fire(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook("weekly", trigger=WEEKLY, steps=[{"tag": "x"}])
    for n in range(3):
        await h.customer(f"wm{n}")
    monday_nine = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    clock.set(monday_nine + timedelta(milliseconds=200))
    on_time, late = _scheduler(h), _scheduler(h)
    assert await on_time.fire("weekly") == 3
    clock.advance(timedelta(seconds=75))  # the other worker's loop was busy past the minute
    weekly = playbook("weekly", trigger=WEEKLY)
    assert fire_time_of(weekly, clock.now(), ZONE) == monday_nine
    assert await late.fire("weekly") is None
    async with db.sessions() as session:
        assert (await session.scalars(select(CronFire.fire_time))).all() == [monday_nine]


async def test_drain_starts_no_new_job_and_waits_for_the_running_one(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    scheduler = _scheduler(h)
    started: list[int] = []
    release = asyncio.Event()

    async def slow() -> None:
        started.append(len(started))
        await release.wait()

    scheduler.every("slow", 0.05, slow)
    scheduler.start(3600)
    try:
        for _ in range(500):
            if started:
                break
            await asyncio.sleep(0.01)
        draining = asyncio.ensure_future(scheduler.drain())
        await asyncio.sleep(0.2)  # several intervals pass: paused, nothing new starts
        assert not draining.done() and started == [0]
        release.set()
        await draining
        assert started == [0]
    finally:
        scheduler.shutdown()


async def test_resume_finishes_playbook_fan_outs_and_leaves_campaign_fires_alone(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook("weekly", trigger=WEEKLY, steps=[{"tag": "x"}])
    await h.customer("wm1")
    async with db.sessions.begin() as session:
        for job in ("playbook:weekly", f"{CAMPAIGN_JOB_PREFIX}weekly_vip"):
            session.add(CronFire(job=job, fire_time=clock.now(), taken_at=clock.now()))
    assert await _scheduler(h).resume() == 1
    async with db.sessions() as session:
        fires = (await session.execute(select(CronFire.job, CronFire.finished_at))).all()
    assert {job: at is not None for job, at in fires} == {
        "playbook:weekly": True,
        "campaign:weekly_vip": False,  # its starter finishes it (a campaign run is not ours)
    }
