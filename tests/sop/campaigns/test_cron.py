"""Cron campaigns: each fire is taken once and starts a new run; an active run skips a fire."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from sop.campaigns.cron import CampaignStarter, schedule_campaigns
from sop.engine.catalog import Catalog
from sop.engine.fanout import FanOut
from sop.engine.scheduler import CAMPAIGN_JOB_PREFIX, EngineScheduler
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.models import CampaignRun, CronFire, OutboxRow, OutboxState, RunState
from tests.sop.campaigns.world import TEMPLATES, ZONE, campaign, seed
from tests.support.clock import ManualClock
from tests.support.database import Database

WEEKLY = """\
name: weekly_vip
channel: mass
audience: {tags: {any: [VIP]}}
content: {text: "本周新品，{{ owner.name }} 为您推荐"}
schedule: {cron: "0 10 * * 1", timezone: Asia/Shanghai}
frequency_cap: false
"""


def scheduler(db: Database, clock: ManualClock) -> EngineScheduler:
    fanout = FanOut(db.sessions, Catalog, SopSettings(), ZONE, clock.now)
    return EngineScheduler(fanout, clock, wake=asyncio.Event(), zone_default=ZONE)


async def runs(db: Database) -> list[CampaignRun]:
    async with db.sessions() as session:
        return list((await session.scalars(select(CampaignRun).order_by(CampaignRun.id))).all())


async def test_only_cron_campaigns_get_a_job(
    db: Database, clock: ManualClock, tmp_path: Path
) -> None:
    (tmp_path / "weekly.yaml").write_text(WEEKLY, encoding="utf-8")
    (tmp_path / "now.yaml").write_text(WEEKLY.replace("weekly_vip", "once").split("schedule")[0])
    (tmp_path / "broken.yaml").write_text("name: broken\nchannel: fax\n", encoding="utf-8")
    engine = scheduler(db, clock)
    settings = SopSettings(campaigns=[str(tmp_path), str(tmp_path / "missing")])
    names = schedule_campaigns(engine, db.sessions, Renderer(TEMPLATES), settings, clock, ZONE)
    assert names == ["weekly_vip"]
    engine.start(3600)
    try:
        assert f"{CAMPAIGN_JOB_PREFIX}weekly_vip" in engine.job_ids()
    finally:
        engine.shutdown()


async def test_each_fire_is_taken_once_and_starts_a_run(db: Database, clock: ManualClock) -> None:
    await seed(db, clock)
    definition = campaign("weekly", schedule={"cron": "0 10 * * 1"}, frequency_cap=False)
    starter = CampaignStarter(db.sessions, Renderer(TEMPLATES), SopSettings(), clock, ZONE)
    start = functools.partial(starter.start, definition)
    engine = scheduler(db, clock)
    job = f"{CAMPAIGN_JOB_PREFIX}weekly"

    first = await engine.fire_campaign(job, start)
    assert await engine.fire_campaign(job, start) is None  # same minute: another process's
    [run] = await runs(db)
    assert (run.id, run.number, run.state) == (first, 1, RunState.RUNNING)
    assert run.fire_time == clock.now().replace(second=0, microsecond=0)
    assert run.counts["included"] == 6

    clock.advance(timedelta(days=7))
    assert await engine.fire_campaign(job, start) is None  # run 1 is still sending: skipped
    assert len(await runs(db)) == 1

    async with db.sessions.begin() as session:
        await session.execute(update(OutboxRow).values(state=OutboxState.SENT))
    clock.advance(timedelta(days=7))
    second = await engine.fire_campaign(job, start)
    done, new = await runs(db)
    assert (done.state, new.id, new.number, new.counts["included"]) == (
        RunState.DONE,
        second,
        2,
        6,
    )
    async with db.sessions() as session:
        fires = (await session.scalars(select(CronFire).where(CronFire.job == job))).all()
    assert len(fires) == 3 and all(f.finished_at is not None for f in fires)
