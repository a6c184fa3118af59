"""Hot reload of cron campaigns: the running server's campaign jobs follow their files (an
edited cron, a new file, a removed one) without a restart; a broken file changes nothing."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import Config
from bot.server import open_runtime
from sop.engine.scheduler import CAMPAIGN_JOB_PREFIX, EngineScheduler
from sop.settings import SopSettings
from tests.support.clock import ManualClock
from tests.support.database import Database

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAMPAIGN = """\
name: {name}
channel: mass
audience: {{tags: {{any: [VIP]}}}}
content: {{text: "本周新品，{{{{ owner.name }}}} 为您推荐"}}
schedule: {{cron: "{cron}", timezone: Asia/Shanghai}}
frequency_cap: false
"""
ONCE = """\
name: once
channel: mass
audience: {tags: {any: [VIP]}}
content: {text: "一次性通知"}
"""


def _config(db: Database, folder: Path) -> Config:
    (folder / "templates").mkdir(exist_ok=True)
    sop = SopSettings(
        playbooks=[str(folder / "playbooks")],
        campaigns=[str(folder / "campaigns")],
        templates=str(folder / "templates"),
    )
    return Config(database_url=db.url, sop=sop)


def _campaign_jobs(scheduler: EngineScheduler) -> list[str]:
    return [job for job in scheduler.job_ids() if job.startswith(CAMPAIGN_JOB_PREFIX)]


def _next_local(scheduler: EngineScheduler, name: str) -> datetime:
    when = scheduler.next_run_time(f"{CAMPAIGN_JOB_PREFIX}{name}")
    assert when is not None
    return when.astimezone(SHANGHAI)


async def test_campaign_jobs_follow_the_files_and_a_broken_file_keeps_them(
    db: Database, clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "campaigns"
    folder.mkdir()
    weekly = folder / "weekly.yaml"
    weekly.write_text(CAMPAIGN.format(name="weekly", cron="0 10 * * 1"), encoding="utf-8")
    (folder / "once.yaml").write_text(ONCE, encoding="utf-8")
    async with open_runtime(_config(db, tmp_path), clock=clock) as runtime:
        reloader, scheduler = runtime.campaign_reloader, runtime.scheduler
        assert reloader is not None and scheduler is not None
        scheduler.start(3600)
        try:
            assert _campaign_jobs(scheduler) == ["campaign:weekly"]  # "once" is not cron
            assert _next_local(scheduler, "weekly").strftime("%a %H:%M") == "Mon 10:00"
            assert await reloader.check() is None  # nothing changed

            weekly.write_text(CAMPAIGN.format(name="weekly", cron="30 10 * * 2"))
            assert await reloader.check() is True
            assert _next_local(scheduler, "weekly").strftime("%a %H:%M") == "Tue 10:30"

            daily = folder / "daily.yaml"
            daily.write_text(CAMPAIGN.format(name="daily", cron="0 9 * * *"), encoding="utf-8")
            assert await reloader.check() is True
            assert _campaign_jobs(scheduler) == ["campaign:daily", "campaign:weekly"]

            weekly.unlink()
            assert await reloader.check() is True
            assert _campaign_jobs(scheduler) == ["campaign:daily"]
            assert reloader.errors == []

            broken = folder / "broken.yaml"
            broken.write_text(CAMPAIGN.format(name="broken", cron="0 8 * * *") + "surprise: 1\n")
            daily.write_text(CAMPAIGN.format(name="daily", cron="15 9 * * 1-5"))
            with caplog.at_level(logging.ERROR):
                assert await reloader.check() is False
            assert reloader.errors == [
                f"{broken}:7:1: surprise: 'surprise' is not a valid key; valid keys: name, "
                "description, channel, account, audience, groups, content, variants, task, "
                "schedule, throttle, frequency_cap, goal"
            ]
            assert "keeping the current cron campaign jobs" in caplog.text
            assert _campaign_jobs(scheduler) == ["campaign:daily"]  # unchanged, as it was
            assert _next_local(scheduler, "daily").strftime("%H:%M") == "09:00"

            broken.unlink()
            assert await reloader.check() is True
            assert reloader.errors == []
            assert _campaign_jobs(scheduler) == ["campaign:daily"]
            assert _next_local(scheduler, "daily").strftime("%H:%M") == "09:15"
        finally:
            scheduler.shutdown()
