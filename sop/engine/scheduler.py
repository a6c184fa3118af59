"""APScheduler 3, hidden here: the engine's tick and one job per schedule playbook.

APScheduler only decides *when* to look (in-memory jobs, nothing persisted in it); what
happens is decided by our tables with the injected clock: a fire is taken once through
:func:`sop.engine.fanout.take_fire`, and its fire time is computed from the clock (the
minute, or the ``date_field`` day's ``at``), so every process names the same fire alike.

``cron`` playbooks fire on their five-field crontab in the playbook's zone; ``date_field``
playbooks fire daily at ``at`` local time and enroll customers whose date is today. Cron
campaigns get one job each too; both sets are re-synced when their files are reloaded.

A fire is named by the time it was scheduled for, not the time it ran: a worker whose loop
ran the job late (up to the misfire grace) takes the same fire as one that ran it on time.
Fan-outs a stopped or crashed worker left half done are taken up by any worker within
:data:`RESUME_EVERY`. On a graceful stop, :meth:`EngineScheduler.drain` starts no new job
and lets the running ones finish.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from sqlalchemy import update

from sop.clock import Clock
from sop.engine.fanout import (
    PLAYBOOK_JOB_PREFIX,
    FanOut,
    job_name,
    resume_unfinished,
    take_fire,
)
from sop.loop_status import LoopStatus
from sop.playbooks.model import Playbook
from sop.playbooks.timing import local_instant
from store.models import CronFire
from store.transient import describe

log = logging.getLogger(__name__)

#: Scheduler job ids (and ``CronFire.job``) of cron campaigns start with this.
CAMPAIGN_JOB_PREFIX = "campaign:"
#: How late APScheduler may still run a missed fire (its ``misfire_grace_time``), in seconds.
MISFIRE_GRACE = 300
#: How often every worker looks for fan-outs left unfinished by a stopped or crashed one.
RESUME_EVERY = timedelta(minutes=5)


def scheduled_fire(trigger: CronTrigger, now: datetime) -> datetime:
    """The fire a job running at ``now`` stands for: ``trigger``'s latest fire time within the
    misfire grace before ``now`` (a worker that ran it late names the same fire as one that
    ran it on time), else the minute of ``now`` (a fire run by hand)."""
    found = None
    at = trigger.get_next_fire_time(None, now - timedelta(seconds=MISFIRE_GRACE))
    while at is not None and at <= now:
        found = at
        at = trigger.get_next_fire_time(at, at + timedelta(microseconds=1))
    if found is None:
        return now.astimezone(UTC).replace(second=0, microsecond=0)
    return cast(datetime, found).astimezone(UTC)


def fire_time_of(playbook: Playbook, now: datetime, zone_default: str) -> datetime:
    """The fire a job running at ``now`` stands for: the scheduled minute for cron
    (:func:`scheduled_fire`), today's ``at`` (local) for a date field; the same in every
    process."""
    schedule = playbook.trigger.schedule
    assert schedule is not None
    if schedule.date_field is not None:
        zone = playbook.zone(zone_default)
        day = now.astimezone(zone).date()
        return local_instant(datetime.combine(day, schedule.at), zone)
    return scheduled_fire(trigger_of(playbook, zone_default), now)


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def crontab_days(field: str) -> str:
    """A crontab day-of-week field with day names: crontab counts 0 (or 7) as Sunday,
    APScheduler 3 counts 0 as Monday, so ``1`` would silently fire on Tuesdays."""
    return re.sub(
        r"\d+", lambda m: _DAYS[int(m.group())] if int(m.group()) < 8 else m.group(), field
    )


def cron_trigger(cron: str, zone: ZoneInfo) -> CronTrigger:
    """A five-field crontab (``m h dom mon dow``) in ``zone``, Sunday counted as crontab does."""
    minute, hour, day, month, day_of_week = cron.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_days(day_of_week),
        timezone=zone,
    )


def trigger_of(playbook: Playbook, zone_default: str) -> CronTrigger:
    schedule = playbook.trigger.schedule
    assert schedule is not None
    zone = playbook.zone(zone_default)
    if schedule.cron is not None:
        return cron_trigger(schedule.cron, zone)
    return CronTrigger(hour=schedule.at.hour, minute=schedule.at.minute, timezone=zone)


@dataclass(frozen=True)
class CampaignJob:
    """A cron campaign's job: ``start(fire_time)`` at each fire of ``cron`` in ``zone``."""

    name: str
    cron: str
    zone: ZoneInfo
    start: Callable[[datetime], Awaitable[object]]

    @property
    def job_id(self) -> str:
        return f"{CAMPAIGN_JOB_PREFIX}{self.name}"

    @property
    def when(self) -> tuple[str, str]:
        """What the job's trigger is made of: the same, and the job is kept."""
        return self.cron, self.zone.key


class EngineScheduler:
    """Ticks the engine (``wake``) and fires schedule playbooks through ``fanout``."""

    def __init__(
        self, fanout: FanOut, clock: Clock, *, wake: asyncio.Event, zone_default: str
    ) -> None:
        self._fanout = fanout
        self._clock = clock
        self._wake = wake
        self._zone_default = zone_default
        self._scheduler: AsyncIOScheduler | None = None
        self._extra: list[tuple[str, Callable[[], Awaitable[object]], object]] = []
        self._campaigns: dict[str, CampaignJob] = {}
        self._running: set[asyncio.Task[object]] = set()

    def every(self, job_id: str, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        """Run ``job`` every ``seconds`` once started (the task follow-ups tick)."""
        self._extra.append((job_id, job, IntervalTrigger(seconds=seconds)))

    def daily(
        self,
        job_id: str,
        at: time,
        zone: ZoneInfo,
        job: Callable[[], Awaitable[object]],
        *,
        day_of_week: str = "*",
    ) -> None:
        """Run ``job`` at local ``at`` in ``zone`` (on ``day_of_week``: mon..sun) once started
        (the task digests). The job itself must make a repeated fire harmless."""
        trigger = CronTrigger(
            hour=at.hour, minute=at.minute, day_of_week=day_of_week, timezone=zone
        )
        self._extra.append((job_id, job, trigger))

    def sync_campaign_jobs(self, jobs: Iterable[CampaignJob]) -> None:
        """Make the cron campaigns exactly ``jobs``, before or after :meth:`start` (a reload):
        jobs of campaigns gone or whose cron or zone changed are removed, new ones added. An
        unchanged campaign keeps its job, so its next run (or a fire pending while the loop
        was busy) is not reset; its fires start the new definition all the same."""
        previous, self._campaigns = self._campaigns, {job.name: job for job in jobs}
        scheduler = self._scheduler
        if scheduler is None:
            return
        for job in scheduler.get_jobs():
            if not job.id.startswith(CAMPAIGN_JOB_PREFIX):
                continue
            name = job.id.removeprefix(CAMPAIGN_JOB_PREFIX)
            new, old = self._campaigns.get(name), previous.get(name)
            if new is None or old is None or new.when != old.when:
                job.remove()
        for campaign in self._campaigns.values():
            if scheduler.get_job(campaign.job_id) is None:
                scheduler.add_job(
                    self._tracked(functools.partial(self.fire_current, campaign.name)),
                    cron_trigger(campaign.cron, campaign.zone),
                    id=campaign.job_id,
                    coalesce=True,
                    max_instances=1,
                    misfire_grace_time=MISFIRE_GRACE,
                )

    async def fire_current(self, name: str) -> object | None:
        """A fire of campaign ``name`` as it is defined now (None when it is gone)."""
        campaign = self._campaigns.get(name)
        if campaign is None:
            return None
        trigger = cron_trigger(campaign.cron, campaign.zone)
        return await self.fire_campaign(campaign.job_id, campaign.start, trigger=trigger)

    async def fire_campaign(
        self,
        job_id: str,
        start: Callable[[datetime], Awaitable[object]],
        *,
        trigger: CronTrigger | None = None,
    ) -> object | None:
        """Take this fire of ``job_id`` (one process wins: the fire ``trigger`` scheduled,
        else this minute) and run ``start`` with its fire time; what ``start`` returned, or
        None when another process took it."""
        now = self._clock.now()
        if trigger is None:
            fire_time = now.astimezone(UTC).replace(second=0, microsecond=0)
        else:
            fire_time = scheduled_fire(trigger, now)
        async with self._fanout.sessions.begin() as session:
            fire_id = await take_fire(session, job_id, fire_time, now=now)
        if fire_id is None:
            log.info("fire %s at %s taken by another process", job_id, fire_time)
            return None
        result = await start(fire_time)
        async with self._fanout.sessions.begin() as session:
            await session.execute(
                update(CronFire)
                .where(CronFire.id == fire_id)
                .values(finished_at=self._clock.now())
            )
        self._wake.set()
        return result

    def start(self, tick_seconds: float, *, status: LoopStatus | None = None) -> None:
        """Start the jobs; ``status`` (the health endpoint's) hears of each job run."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(self._wake.set, IntervalTrigger(seconds=tick_seconds), id="engine:tick")
        resume = IntervalTrigger(seconds=RESUME_EVERY.total_seconds())
        extra = [*self._extra, ("engine:resume", self.resume, resume)]
        for job_id, job, trigger in extra:
            scheduler.add_job(
                self._tracked(job),
                trigger,
                id=job_id,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=MISFIRE_GRACE,
            )
        if status is not None:
            scheduler.add_listener(_reporter(status), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        scheduler.start()
        self._scheduler = scheduler
        self.sync_playbook_jobs()
        self.sync_campaign_jobs(list(self._campaigns.values()))

    def sync_playbook_jobs(self) -> None:
        """One cron job per enabled schedule playbook of the current catalog: called at start
        and after a reload (jobs of removed or changed playbooks are replaced)."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        for job in scheduler.get_jobs():
            if job.id.startswith(PLAYBOOK_JOB_PREFIX):
                job.remove()
        for entry in self._fanout.catalog_provider().active():
            if entry.playbook.trigger.schedule is not None:
                scheduler.add_job(
                    self._tracked(functools.partial(self.fire, entry.name)),
                    trigger_of(entry.playbook, self._zone_default),
                    id=job_name(entry.playbook),
                    coalesce=True,
                    misfire_grace_time=MISFIRE_GRACE,
                )

    def job_ids(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs()) if self._scheduler else []

    def next_run_time(self, job_id: str) -> datetime | None:
        """When job ``job_id`` runs next (None: no such job, or not started)."""
        job = self._scheduler.get_job(job_id) if self._scheduler else None
        return None if job is None else cast(datetime | None, job.next_run_time)

    def _tracked(self, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
        """``job`` as a coroutine function whose runs :meth:`drain` can wait for."""

        async def run() -> object:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                return await job()
            finally:
                self._running.discard(task)

        return run

    async def drain(self) -> None:
        """Start no new job; return when the jobs running now (a fan-out, a digest) have
        finished. Cancelling this cancels them (:meth:`shutdown` does too)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.pause()
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def shutdown(self) -> None:
        """Stop at once; jobs still running are cancelled (a fan-out resumes from its
        cursor, a digest or reminder keeps its idempotency key)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._scheduler = None

    async def resume(self) -> int:
        """Finish fan-outs a crashed process left half done."""
        return await resume_unfinished(self._fanout)

    async def fire(self, playbook_name: str) -> int | None:
        """Take this fire of ``playbook_name`` and fan out; enrolled count, None if taken."""
        entry = self._fanout.catalog_provider().get(playbook_name)
        if entry is None or entry.playbook.trigger.schedule is None:
            return None
        now = self._clock.now()
        fire_time = fire_time_of(entry.playbook, now, self._zone_default)
        async with self._fanout.sessions.begin() as session:
            fire_id = await take_fire(session, job_name(entry.playbook), fire_time, now=now)
        if fire_id is None:
            log.info("fire %s at %s taken by another process", playbook_name, fire_time)
            return None
        try:
            enrolled = await self._fanout.run(fire_id, playbook_name, fire_time)
        except Exception:
            log.exception(
                "fan-out of %s at %s failed; resumed on restart", playbook_name, fire_time
            )
            raise
        self._wake.set()
        return enrolled


def _reporter(status: LoopStatus) -> Callable[[JobExecutionEvent], None]:
    def report(event: JobExecutionEvent) -> None:
        if event.exception is not None:
            status.failed(f"job {event.job_id}: {describe(event.exception)}")
        else:
            status.passed()

    return report


__all__ = [
    "CAMPAIGN_JOB_PREFIX",
    "CampaignJob",
    "EngineScheduler",
    "cron_trigger",
    "fire_time_of",
    "scheduled_fire",
    "trigger_of",
]
