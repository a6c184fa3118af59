"""A broadcast campaign (群发), as typed frozen models: what the loader produces and runs use.

A campaign reuses the playbook language where it can (audience conditions, message bodies,
durations, quiet hours, time zones), so an operator who writes playbooks reads campaigns
without a manual. What is new is the shape of a broadcast: one ``channel`` for everyone,
``variants`` split by percentage, a ``schedule`` (now, at a time, or each cron fire), a
``throttle`` that spreads the sends, and a ``goal`` counted within an attribution window.
Rules across keys are in :func:`campaign_errors`, each with the path of the key at fault.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, Field, model_validator

from sop.audience.model import Audience, Duration, Names, Strict
from sop.playbooks.model import (
    Content,
    EventName,
    KeyPath,
    LocalDateTime,
    QuietHours,
    ZoneName,
)

ChannelName = Literal["mass", "group_mass", "mp", "staff_task"]
#: Channels that send one content to many recipients of one staff member (add_msg_template).
MASS_CHANNELS = frozenset({"mass", "group_mass"})
#: Name of the only variant of a campaign without ``variants``.
DEFAULT_VARIANT = "default"


class CampaignAudience(Audience):
    """The playbook audience conditions, plus: skip customers who received any marketing
    message (playbook or campaign) within ``exclude_messaged_within``. Opted-out customers are
    always excluded."""

    exclude_messaged_within: Duration | None = None


class GroupTarget(Strict):
    """Customer groups for ``group_mass``: owned by one of ``owners`` and/or named (or chat id)
    one of ``names``; neither given: every group that is not dismissed."""

    owners: Names = []
    names: Names = []


class Variant(Content):
    """One version of the content and the share of recipients who get it (percent)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    split: int = Field(ge=1, le=100)


def _schedule(value: Any) -> Any:
    if value == "now":
        return {}
    if isinstance(value, str):
        raise ValueError(f"expected 'now' or a mapping with 'at' or 'cron', got {value!r}")
    return value


class CampaignSchedule(Strict):
    """When runs start: at once (``now``, the default), at a local date-time (``at``), or at
    each fire of a five-field ``cron`` (each fire is a new run). Sends falling inside
    ``quiet_hours`` move to their end, in ``timezone`` (default: the config's)."""

    at: LocalDateTime | None = None
    cron: str | None = None
    timezone: ZoneName | None = None
    quiet_hours: QuietHours | None = None

    @model_validator(mode="after")
    def _one(self) -> CampaignSchedule:
        if self.at is not None and self.cron is not None:
            raise ValueError("give 'at' or 'cron', not both (or 'now')")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron needs five fields (m h dom mon dow), got {self.cron!r}")
        return self

    def zone(self, default: str) -> ZoneInfo:
        return ZoneInfo(self.timezone or default)

    def start_at(self, now: datetime, default_zone: str) -> datetime:
        """When a run started ``now`` begins sending: ``at`` (if still ahead) or now."""
        if self.at is None:
            return now
        from sop.playbooks.timing import local_instant

        return max(now, local_instant(self.at, self.zone(default_zone)))


class Throttle(Strict):
    """At most this many sends (outbox rows) a minute or an hour, spread evenly."""

    per_minute: int | None = Field(default=None, ge=1, le=10_000)
    per_hour: int | None = Field(default=None, ge=1, le=600_000)

    @model_validator(mode="after")
    def _one(self) -> Throttle:
        if (self.per_minute is None) == (self.per_hour is None):
            raise ValueError("give exactly one of 'per_minute' or 'per_hour'")
        return self

    @property
    def interval(self) -> timedelta:
        if self.per_minute is not None:
            return timedelta(minutes=1) / self.per_minute
        assert self.per_hour is not None
        return timedelta(hours=1) / self.per_hour


class CampaignGoal(Strict):
    """What counts as a response or conversion, within ``within`` of the recipient being
    reached: any ``reply``, a ``tag`` put on the customer, or an ``event`` on their timeline."""

    reply: bool = False
    tag: str | None = None
    event: EventName | None = None
    within: Duration = timedelta(days=3)

    @model_validator(mode="after")
    def _one(self) -> CampaignGoal:
        if sum([self.reply, self.tag is not None, self.event is not None]) != 1:
            raise ValueError("give exactly one of 'reply: true', 'tag' or 'event'")
        return self


class StaffTask(Strict):
    """For ``staff_task``: the task's title and how long the staff member has."""

    title: str = Field(default="Follow up", min_length=1, max_length=200)
    due: Duration = timedelta(days=1)


class Campaign(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str = ""
    channel: ChannelName
    #: ``mp``: the Official Account's name in the config (``mp_accounts[].name``).
    account: str | None = None
    audience: CampaignAudience = CampaignAudience()
    groups: GroupTarget | None = None
    content: Content | None = None
    variants: list[Variant] = []
    task: StaffTask | None = None
    schedule: Annotated[CampaignSchedule, BeforeValidator(_schedule)] = CampaignSchedule()
    throttle: Throttle | None = None
    #: Count against (and respect) the frequency cap shared with playbooks (sop.frequency_cap).
    frequency_cap: bool = True
    goal: CampaignGoal | None = None

    def bodies(self) -> list[tuple[str, int, Content]]:
        """``(variant name, split, content)`` for every variant (one when there are none)."""
        if self.variants:
            return [(v.name, v.split, v) for v in self.variants]
        assert self.content is not None
        return [(DEFAULT_VARIANT, 100, self.content)]

    @property
    def is_mass(self) -> bool:
        return self.channel in MASS_CHANNELS


def campaign_errors(campaign: Campaign) -> list[tuple[KeyPath, str]]:
    """Rules across keys, each with the path of the key at fault."""
    errors: list[tuple[KeyPath, str]] = []
    if (campaign.content is None) == (not campaign.variants):
        errors.append((("content",), "give exactly one of 'content' or 'variants'"))
    if campaign.variants:
        total = sum(v.split for v in campaign.variants)
        if total != 100:
            errors.append((("variants",), f"the splits add up to {total}, not 100"))
        seen: set[str] = set()
        for index, variant in enumerate(campaign.variants):
            if variant.name in seen:
                errors.append(
                    (("variants", index, "name"), f"variant {variant.name!r} is named twice")
                )
            seen.add(variant.name)
    channel = campaign.channel
    if channel == "mp" and not campaign.account:
        errors.append((("account",), "an mp campaign needs 'account' (the config's name)"))
    if channel != "mp" and campaign.account is not None:
        errors.append((("account",), f"'account' is for mp campaigns, not {channel}"))
    if channel == "group_mass":
        if campaign.audience != CampaignAudience():
            errors.append(
                (
                    ("audience",),
                    "a group_mass campaign goes to groups: choose them with 'groups'"
                    " (owners, names), not with customer conditions",
                )
            )
    elif campaign.groups is not None:
        errors.append((("groups",), f"'groups' is for group_mass campaigns, not {channel}"))
    if campaign.task is not None and channel != "staff_task":
        errors.append((("task",), f"'task' is for staff_task campaigns, not {channel}"))
    if not campaign.is_mass:
        for path, content in content_paths(campaign):
            if content.attachments:
                errors.append(
                    (
                        (*path, "attachments"),
                        f"attachments go with mass and group_mass messages, not {channel}",
                    )
                )
    return errors


def content_paths(campaign: Campaign) -> list[tuple[KeyPath, Content]]:
    """Every body with its key path (for template checks at load)."""
    if campaign.variants:
        return [(("variants", i), v) for i, v in enumerate(campaign.variants)]
    return [(("content",), campaign.content)] if campaign.content is not None else []
