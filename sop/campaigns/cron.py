"""Cron campaigns: each fire of ``schedule: cron`` starts a new run by itself.

The engine scheduler owns the clockwork (``EngineScheduler.sync_campaign_jobs``, each fire
taken once across processes); this module loads the campaign files into jobs (at start and on
each reload) and says what a fire does: mark the last run ``done`` if its rows all settled,
finish a fan-out a crash interrupted, then create the run for this fire (``fire_time`` is
unique per campaign, a second guard) and fan it out. A fire that
finds the previous run still active (paused, or still sending) is skipped with a warning:
two runs of one campaign never overlap, as with a manual ``start``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.campaigns import control
from sop.campaigns.fanout import Fanout
from sop.campaigns.loader import load_campaigns
from sop.campaigns.model import Campaign
from sop.clock import Clock
from sop.engine.scheduler import CampaignJob
from sop.playbooks.errors import PlaybookError
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.models import RunState

log = logging.getLogger(__name__)


class CampaignScheduler(Protocol):
    """What :func:`schedule_campaigns` needs of the engine scheduler."""

    def sync_campaign_jobs(self, jobs: Iterable[CampaignJob]) -> None: ...


@dataclass
class CampaignStarter:
    """Starts one run of a campaign for a fire and fans it out."""

    sessions: async_sessionmaker[AsyncSession]
    renderer: Renderer
    settings: SopSettings
    clock: Clock
    zone_default: str

    async def start(self, campaign: Campaign, fire_time: datetime) -> int | None:
        """The new run's id, or None when the previous run is still active (skipped)."""
        now = self.clock.now()
        fanout = Fanout(self.sessions, self.renderer, self.settings, self.clock, self.zone_default)
        async with self.sessions.begin() as session:
            await control.progress(session, campaign.name, now=now)  # settled: done
            last = await control.latest_run(session, campaign.name)
            unfinished = (
                last is not None and last.state == RunState.RUNNING and last.fanned_out_at is None
            )
        if last is not None and unfinished:
            await fanout.run(last.id)
        async with self.sessions.begin() as session:
            try:
                run = await control.create_run(
                    session,
                    campaign,
                    now=now,
                    zone_default=self.zone_default,
                    fire_time=fire_time,
                )
            except control.CampaignStateError as exc:
                log.warning("campaign %s: fire at %s skipped: %s", campaign.name, fire_time, exc)
                return None
            run_id = run.id
        await fanout.run(run_id)
        return run_id


@dataclass
class CronCampaigns:
    """The jobs of the valid cron campaigns, and every error of the campaign files."""

    jobs: list[CampaignJob] = field(default_factory=list)
    errors: list[PlaybookError] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [job.name for job in self.jobs]


def load_cron_campaigns(starter: CampaignStarter) -> CronCampaigns:
    """Load the folders of ``starter.settings.campaigns`` (a missing one holds none): a job
    for each valid cron campaign, by name; called at start and again on each reload."""
    paths = [p for p in starter.settings.campaigns if Path(p).exists()]
    loaded = load_campaigns(paths, renderer=starter.renderer)
    result = CronCampaigns(errors=loaded.errors)
    for name, campaign in sorted(loaded.campaigns.items()):
        cron = campaign.schedule.cron
        if cron is not None:
            zone = campaign.schedule.zone(starter.zone_default)
            start = functools.partial(starter.start, campaign)
            result.jobs.append(CampaignJob(name, cron, zone, start))
    return result


def schedule_campaigns(  # noqa: PLR0917 - the composition root calls it once
    scheduler: CampaignScheduler,
    sessions: async_sessionmaker[AsyncSession],
    renderer: Renderer,
    settings: SopSettings,
    clock: Clock,
    zone_default: str,
) -> list[str]:
    """Schedule every valid cron campaign in ``settings.campaigns`` at start; their names.

    An invalid campaign file is logged with its errors and left out (the server still
    starts: ``scrm campaign plan`` shows the same errors).
    """
    loaded = load_cron_campaigns(
        CampaignStarter(sessions, renderer, settings, clock, zone_default)
    )
    for error in loaded.errors:
        log.error("campaign not scheduled: %s", error)
    scheduler.sync_campaign_jobs(loaded.jobs)
    return loaded.names
