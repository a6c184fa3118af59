"""Cron campaigns: each fire of ``schedule: cron`` starts a new run by itself.

The engine scheduler owns the clockwork (:meth:`sop.engine.scheduler.EngineScheduler.campaign`
takes each fire once across processes); this module says what a fire does: mark the last run
``done`` if its rows all settled, finish a fan-out a crash interrupted, then create the run for
this fire (``fire_time`` is unique per campaign, a second guard) and fan it out. A fire that
finds the previous run still active (paused, or still sending) is skipped with a warning:
two runs of one campaign never overlap, as with a manual ``start``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.campaigns import control
from sop.campaigns.fanout import Fanout
from sop.campaigns.loader import load_campaigns
from sop.campaigns.model import Campaign
from sop.clock import Clock
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.models import RunState

log = logging.getLogger(__name__)


class CampaignScheduler(Protocol):
    """What :func:`schedule_campaigns` needs of the engine scheduler."""

    def campaign(
        self,
        name: str,
        cron: str,
        zone: ZoneInfo,
        start: Callable[[datetime], Awaitable[object]],
    ) -> None: ...


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


def schedule_campaigns(  # noqa: PLR0917 - the composition root calls it once
    scheduler: CampaignScheduler,
    sessions: async_sessionmaker[AsyncSession],
    renderer: Renderer,
    settings: SopSettings,
    clock: Clock,
    zone_default: str,
) -> list[str]:
    """Register a job for every valid cron campaign in ``settings.campaigns``; their names.

    An invalid campaign file is logged with its errors and left out (the server still
    starts: ``scrm campaign plan`` shows the same errors); a missing folder means none.
    """
    paths = [p for p in settings.campaigns if Path(p).exists()]
    loaded = load_campaigns(paths, renderer=renderer)
    for error in loaded.errors:
        log.error("campaign not scheduled: %s", error)
    starter = CampaignStarter(sessions, renderer, settings, clock, zone_default)
    names = []
    for name, campaign in sorted(loaded.campaigns.items()):
        cron = campaign.schedule.cron
        if cron is None:
            continue
        zone = campaign.schedule.zone(zone_default)
        scheduler.campaign(name, cron, zone, functools.partial(starter.start, campaign))
        names.append(name)
    return names
