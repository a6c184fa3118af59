"""The task system assembled: what the composition root subscribes and schedules.

``bot.server`` builds one :class:`TaskSystem` per process, routes task card presses to it,
subscribes the staff commands to ``MessageReceived`` and adds three jobs to the engine
scheduler: the follow-ups tick, the daily digest and the weekly digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.delivery.card_routes import CardRoutes
from sop.engine.scheduler import EngineScheduler
from sop.events import EventBus, MessageReceived
from sop.settings import TaskSettings
from sop.tasks.cards import CardPresses
from sop.tasks.commands import StaffCommands
from sop.tasks.digests import DailyDigest
from sop.tasks.followups import FollowUps
from sop.tasks.managers import LeaderDirectory, Managers
from sop.tasks.weekly import WeeklyDigest

#: Origins of task cards: the nudge's (``task:<id>:card``) and staff-task campaigns'
#: (``campaign:<run>:c<id>``); their buttons are all ``task:<id>:<action>``.
CARD_PREFIXES = ("task:", "campaign:")


@dataclass(frozen=True)
class TaskSystem:
    settings: TaskSettings
    zone: ZoneInfo
    managers: Managers
    followups: FollowUps
    daily: DailyDigest
    weekly: WeeklyDigest
    presses: CardPresses
    commands: StaffCommands

    def subscribe(self, bus: EventBus, routes: CardRoutes) -> None:
        for prefix in CARD_PREFIXES:
            routes.on(prefix, self.presses)
        bus.subscribe(MessageReceived, self.commands, batched=True)

    def schedule(self, scheduler: EngineScheduler) -> None:
        settings = self.settings
        scheduler.every("tasks:followups", settings.tick_seconds, self.followups.run_once)
        if settings.daily_digest_at is not None:
            scheduler.daily("tasks:daily", settings.daily_digest_at, self.zone, self.daily.run)
        if settings.weekly_digest_at is not None:
            scheduler.daily(
                "tasks:weekly",
                settings.weekly_digest_at,
                self.zone,
                self.weekly.run,
                day_of_week=settings.weekly_digest_day,
            )


def task_system(
    sessions: async_sessionmaker[AsyncSession],
    settings: TaskSettings,
    clock: Clock,
    zone: str,
    directory: LeaderDirectory | None = None,
) -> TaskSystem:
    where = ZoneInfo(zone)
    managers = Managers(settings.escalation, clock, directory)
    return TaskSystem(
        settings=settings,
        zone=where,
        managers=managers,
        followups=FollowUps(sessions, settings, clock, where, managers),
        daily=DailyDigest(sessions, settings, clock, where),
        weekly=WeeklyDigest(sessions, managers, clock, where),
        presses=CardPresses(settings, clock, where),
        commands=StaffCommands(settings, clock, where),
    )


def wire_tasks(
    sessions: async_sessionmaker[AsyncSession],
    settings: TaskSettings,
    clock: Clock,
    zone: str,
    directory: LeaderDirectory | None,
    *,
    bus: EventBus,
    scheduler: EngineScheduler,
) -> TaskSystem:
    """Build the task system, route card presses and staff commands to it, add its jobs."""
    system = task_system(sessions, settings, clock, zone, directory)
    system.subscribe(bus, CardRoutes(bus))
    system.schedule(scheduler)
    return system
