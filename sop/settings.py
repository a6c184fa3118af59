"""The engine's settings, as the ``sop:`` section of the configuration holds them.

Defined here, not in ``bot.config``, because ``sop`` must not import ``bot``; the bot's
configuration embeds this model and hands it to the engine.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Literal

from pydantic import Field, field_validator

from sop.audience.model import Duration, Names, Strict
from sop.playbooks.model import Clock, QuietHours


class OptOut(Strict):
    """Words that opt a customer out of (or back into) every marketing playbook and campaign.

    A message equal to one of them (trimmed, case-insensitive) counts; a sentence that merely
    contains "stop" does not.
    """

    keywords: Names = ["退订", "TD", "STOP"]
    opt_in_keywords: Names = ["订阅", "START"]
    confirmation: str = "您已退订，将不再收到营销消息。回复“订阅”可重新接收。"
    opt_in_confirmation: str = "您已重新订阅，感谢关注！"


class FrequencyCap(Strict):
    """At most ``messages`` marketing messages per customer in any ``per`` window, counted
    over every playbook and campaign together."""

    messages: int = Field(default=2, ge=1)
    per: Duration = timedelta(days=1)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class TaskEscalation(Strict):
    """Who hears about a late task: a configured manager first (by staff member, then by
    department), else the department leader WeCom knows (``department_leader``), else
    ``default``. Nobody found: the task's history says so and nobody is told."""

    after: Duration = timedelta(hours=2)  # past due, for tasks without their own escalate_at
    #: How long after the reminder reached the staff member before the manager hears of it.
    grace: Duration = timedelta(minutes=30)
    managers: dict[str, str] = {}
    by_department: dict[int, str] = {}
    from_directory: bool = True
    default: str | None = Field(default=None, min_length=1, max_length=64)


class TaskSettings(Strict):
    """The staff side of tasks: card buttons, reminders, escalation and digests (``sop.tasks``).

    Reminders and digests are staff app messages: they wait out ``quiet_hours`` (local time
    in the configuration's zone) and the sender keeps them within the per-member limits.
    """

    snooze: Duration = timedelta(hours=1)  # the card's "Snooze 1 h"
    max_snooze: Duration = timedelta(days=7)
    remind_after: Duration = timedelta(minutes=15)  # past due
    escalation: TaskEscalation = TaskEscalation()
    #: Open tasks this long past due are closed ``expired`` (None: never).
    expire_after: Duration | None = timedelta(days=7)
    quiet_hours: QuietHours | None = QuietHours(start=time(21), end=time(9))
    tick_seconds: float = Field(default=60.0, gt=0)
    daily_digest_at: Clock | None = time(9, 0)
    weekly_digest_day: Weekday = "mon"
    weekly_digest_at: Clock | None = time(9, 30)
    #: A customer whose last message has had no answer this long is "waiting" in the digest.
    reply_wait_hours: int = Field(default=24, ge=1)
    #: Messages older than this are not counted as waiting any more (the digest stays short).
    reply_wait_within: Duration = timedelta(days=7)
    #: At most this many lines per digest section; the rest is counted.
    digest_items: int = Field(default=8, ge=1, le=50)

    @field_validator("snooze", "max_snooze", "remind_after", "reply_wait_within")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"must be a positive duration such as 15m, 1h or 2d, got {value}")
        return value


class SopSettings(Strict):
    #: Playbook files or folders of ``*.yaml`` files, relative to the working directory.
    playbooks: list[str] = ["playbooks"]
    #: Campaign files or folders (``scrm campaign``; ``schedule: cron`` ones start on their own).
    campaigns: list[str] = ["campaigns"]
    #: The message template library (话术库) that ``template:`` names resolve in.
    templates: str = "templates"
    tick_seconds: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=10_000)
    opt_out: OptOut = OptOut()
    frequency_cap: FrequencyCap | None = FrequencyCap()
    tasks: TaskSettings = TaskSettings()
