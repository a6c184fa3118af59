"""A playbook, as typed frozen models: what the loader produces and the engine runs.

The YAML reads like the operator thinks (``trigger``, ``audience``, ``steps`` with ``after:``
and one action each); these models are that shape exactly, with ``extra="forbid"`` so every
misspelt key is an error. Rules that span several keys (a ``goto`` to a step that exists, a
welcome message only after ``customer_added``) are in :func:`reference_errors`, which reports
each with the path of the key at fault so the loader can point at its line.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from sop.audience.model import Audience, Duration, Names, Strict
from sop.playbooks.durations import (
    parse_after,
    parse_clock,
    parse_duration,
    parse_local_datetime,
)

#: Key paths as pydantic reports them: ``("steps", 2, "send", "template")``.
KeyPath = tuple[str | int, ...]


def _step_number(value: Any) -> Any:
    """``goto: 3`` names the third step (positional ids are numbers): YAML reads it as int."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


StepId = Annotated[str, BeforeValidator(_step_number), Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
#: Where a branch goes: a step id, or ``stop``.
Target = StepId


def _clock(value: Any) -> Any:
    return parse_clock(value) if isinstance(value, str) else value


def _after(value: Any) -> Any:
    if isinstance(value, str):
        delay, at = parse_after(value)
        return {"delay": delay, "at": at}
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"give a unit: '{value}s', '{value}m' or '{value}h'")
    return value


def _local_datetime(value: Any) -> Any:
    return parse_local_datetime(value) if isinstance(value, str) else value


Clock = Annotated[time, BeforeValidator(_clock)]
LocalDateTime = Annotated[datetime, BeforeValidator(_local_datetime)]


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai"
        ) from None
    return value


#: An IANA time zone name (playbooks' and campaigns' ``timezone``).
ZoneName = Annotated[str, AfterValidator(_known_zone)]

# --- trigger ---------------------------------------------------------------------------

EventName = Literal[
    "customer_added",
    "message_received",
    "joined_group",
    "left_group",
    "tag_added",
    "tag_removed",
    "customer_removed",
]
#: Which filters apply to which event (the loader reports a filter on the wrong event).
EVENT_FILTERS: dict[str, frozenset[str]] = {
    "customer_added": frozenset({"channel"}),
    "message_received": frozenset({"keywords", "regex", "chat", "source"}),
    "joined_group": frozenset({"groups"}),
    "left_group": frozenset({"groups"}),
    "tag_added": frozenset({"tag"}),
    "tag_removed": frozenset({"tag"}),
    "customer_removed": frozenset({"by"}),
}


class Schedule(Strict):
    """A time-driven trigger: ``cron`` (five fields, the playbook's time zone) enrolls the
    audience at each fire; ``date_field`` enrolls each customer on the day of a date in their
    custom fields (``MM-DD`` or ``YYYY-MM-DD``, e.g. a birthday) at ``at``."""

    cron: str | None = None
    date_field: str | None = None
    at: Clock = time(10, 0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if (self.cron is None) == (self.date_field is None):
            raise ValueError("give exactly one of 'cron' or 'date_field'")
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron needs five fields (m h dom mon dow), got {self.cron!r}")
        return self


class Trigger(Strict):
    """Exactly one of ``event`` (with its filters), ``schedule`` or ``manual: true``."""

    event: EventName | None = None
    schedule: Schedule | None = None
    manual: bool = False
    #: customer_added: only customers added through these channel codes (``State``).
    channel: Names = []
    #: message_received: any of these words (case-insensitive substring) ...
    keywords: Names = []
    #: ... or this regular expression (Python syntax, searched).
    regex: str | None = None
    #: message_received: where the message was said.
    chat: Literal["private", "group", "any"] = "private"
    #: message_received: which callback it came through: ``any``, a kind (``wecom``, ``mp``,
    #: ``aibot``) or one endpoint (``mp:news``: the Official Account named news).
    source: Annotated[str, Field(pattern=r"^(any|(wecom|mp|aibot)(:[A-Za-z0-9_-]{1,32})?)$")] = (
        "any"
    )
    #: joined_group / left_group: only these groups (name or chat id).
    groups: Names = []
    #: tag_added / tag_removed: the tag's name.
    tag: str | None = None
    #: customer_removed: who ended the relationship.
    by: Literal["customer", "staff", "any"] = "any"

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        kinds = [self.event is not None, self.schedule is not None, self.manual]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of 'event', 'schedule' or 'manual: true'")
        if self.event in ("tag_added", "tag_removed") and not self.tag:
            raise ValueError(f"{self.event} needs 'tag': the tag's name")
        return self

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            import re

            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def filters_given(self) -> set[str]:
        """The filter keys set in the YAML (to check they suit the event)."""
        return set(self.model_fields_set) - {"event", "schedule", "manual"}

    def accepts_source(self, source: str) -> bool:
        """Whether a message that came through ``source`` (``mp:news``) passes ``source``."""
        return self.source in ("any", source) or source.startswith(f"{self.source}:")


# --- content ---------------------------------------------------------------------------


class Content(Strict):
    """A message body: inline Jinja2 ``text``, or a ``template`` from the templates library."""

    text: str | None = None
    template: str | None = None
    #: add_msg_template / send_welcome_msg attachments, in the platform's shape
    #: (``{"msgtype": "image", "image": {"media_id": ...}}``, link, miniprogram, video, file).
    attachments: list[dict[str, Any]] = Field(default=[], max_length=9)

    @model_validator(mode="after")
    def _exactly_one(self) -> Content:
        if (self.text is None) == (self.template is None):
            raise ValueError("give exactly one of 'text' (inline) or 'template' (a library file)")
        return self


# --- actions (one class per step type; the engine has one executor per class) -----------


class SendAction(Content):
    """Send to the customer over a real channel.

    ``welcome``: the welcome message of a ``customer_added`` enrollment (20 s window);
    ``mass``: a mass message from the owning staff member (they confirm it in WeCom);
    ``mp``: an Official Account message (48-hour window; ``account`` names it in the config).
    """

    channel: Literal["welcome", "mass", "mp"]
    account: str | None = None


class NudgeAction(Strict):
    """A staff task: a card to the staff member with a rendered script and a due time."""

    #: ``owner`` (the customer's owning staff member) or a staff userid.
    staff: str = "owner"
    title: str = "Follow up"
    script: Content
    due: Duration = timedelta(hours=4)
    escalate_after: Duration | None = None
    #: Wait for the task to end and branch on how it ended (else: go on at once).
    wait: bool = False
    on_done: Target | None = None
    on_skipped: Target | None = None
    on_expired: Target | None = None


class WaitForReply(Strict):
    """Pause until the customer says something (optionally one of ``keywords``) or
    ``timeout`` passes; each outcome may go to a step (default: the next one)."""

    timeout: Duration
    keywords: Names = []
    on_reply: Target | None = None
    on_timeout: Target | None = None


def _names(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


TagNames = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_names)]

#: The action keys a step may carry, exactly one per step.
ACTIONS = ("send", "nudge", "tag", "untag", "wait_for_reply", "if", "goto", "stop")


class After(Strict):
    delay: timedelta
    at: time | None = None


class Step(Strict):
    """One step: when (``after`` the previous step, or ``at`` a local date-time) and what."""

    model_config = Strict.model_config | {"populate_by_name": True}

    id: StepId | None = None
    after: Annotated[After, BeforeValidator(_after)] | None = None
    at: LocalDateTime | None = None

    send: SendAction | None = None
    nudge: NudgeAction | None = None
    tag: TagNames | None = None
    untag: TagNames | None = None
    wait_for_reply: WaitForReply | None = None
    if_: Audience | None = Field(default=None, alias="if")
    then: Target | None = None
    else_: Target | None = Field(default=None, alias="else")
    goto: Target | None = None
    stop: bool | str | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [name for name in ACTIONS if self._raw(name) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(
                f"a step needs exactly one action of {', '.join(ACTIONS)}; found {found}"
            )
        if self.after is not None and self.at is not None:
            raise ValueError("give 'after' or 'at', not both")
        if (self.then is not None or self.else_ is not None) and self.if_ is None:
            raise ValueError("'then' and 'else' belong to an 'if' step")
        return self

    def _raw(self, name: str) -> Any:
        return getattr(self, {"if": "if_"}.get(name, name))

    @property
    def action(self) -> str:
        """The action key (``send``, ``nudge``, ``tag``, ..., ``if``)."""
        return next(name for name in ACTIONS if self._raw(name) is not None)


# --- the playbook ----------------------------------------------------------------------


class QuietHours(Strict):
    """Local times between which nothing customer- or staff-facing runs: a step that falls
    inside is moved to ``end`` (never dropped). ``start`` after ``end`` spans midnight."""

    start: Clock
    end: Clock


class ExitCriteria(Strict):
    """When an enrollment ends early. Opting out always ends marketing playbooks."""

    replied: bool = False
    tags: TagNames = []
    left: bool = True  # the customer removed the staff member or was removed


class Goal(Strict):
    """What counts as a conversion: a tag set, or an event, within ``within`` of enrolling."""

    tag: str | None = None
    event: EventName | None = None
    within: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> Goal:
        if (self.tag is None) == (self.event is None):
            raise ValueError("give exactly one of 'tag' or 'event'")
        return self


def _policy(value: Any, words: dict[str, timedelta | None]) -> Any:
    choices = " or ".join(repr(w) for w in words)
    if isinstance(value, str) and value in words:
        return {"value": words[value]}
    if isinstance(value, str):
        try:
            return {"value": parse_duration(value)}
        except ValueError:
            raise ValueError(
                f"expected {choices} or a duration such as 2h, got {value!r}"
            ) from None
    if not isinstance(value, dict | CatchUp | Reentry):  # a dict: a stored version's JSON
        raise ValueError(f"expected {choices} or a duration such as 2h, got {value!r}")
    return value


class CatchUp(Strict):
    """Steps that fell due while the engine was down: run if late by less than ``value``
    (``None``: always run; ``run`` -> None, ``skip`` -> 15 minutes of grace)."""

    value: timedelta | None


class Reentry(Strict):
    """May a customer enroll again? ``never`` -> None, ``always`` -> 0, ``30d`` -> 30 days
    after the previous enrollment ended."""

    value: timedelta | None


SKIP_GRACE = timedelta(minutes=15)


class Playbook(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str = ""
    enabled: bool = True
    #: Marketing playbooks skip opted-out customers and count against the frequency cap.
    marketing: bool = True
    timezone: ZoneName | None = None
    quiet_hours: QuietHours | None = None
    catch_up: Annotated[
        CatchUp, BeforeValidator(lambda v: _policy(v, {"run": None, "skip": SKIP_GRACE}))
    ] = CatchUp(value=None)
    reentry: Annotated[
        Reentry,
        BeforeValidator(lambda v: _policy(v, {"never": None, "always": timedelta(0)})),
    ] = Reentry(value=None)
    trigger: Trigger
    audience: Audience = Audience()
    exit: ExitCriteria = ExitCriteria()
    goal: Goal | None = None
    steps: list[Step] = Field(min_length=1)

    def step_id(self, index: int) -> str:
        """A step's id: its ``id``, or its 1-based position."""
        return self.steps[index].id or str(index + 1)

    def step_index(self, step_id: str) -> int:
        for index in range(len(self.steps)):
            if self.step_id(index) == step_id:
                return index
        raise KeyError(step_id)

    def zone(self, default: str) -> ZoneInfo:
        return ZoneInfo(self.timezone or default)


def _targets(step: Step) -> Iterator[tuple[str, str]]:
    for key in ("then", "else_", "goto"):
        value = getattr(step, key)
        if value is not None:
            yield key.rstrip("_"), value
    if step.nudge is not None:
        for key in ("on_done", "on_skipped", "on_expired"):
            value = getattr(step.nudge, key)
            if value is not None:
                yield f"nudge.{key}", value
    if step.wait_for_reply is not None:
        for key in ("on_reply", "on_timeout"):
            value = getattr(step.wait_for_reply, key)
            if value is not None:
                yield f"wait_for_reply.{key}", value


def reference_errors(playbook: Playbook) -> list[tuple[KeyPath, str]]:
    """Rules across keys, each with the path of the key at fault."""
    errors: list[tuple[KeyPath, str]] = []
    trigger = playbook.trigger
    if trigger.event is not None:
        allowed = EVENT_FILTERS[trigger.event]
        for name in sorted(trigger.filters_given() - allowed):
            hint = ", ".join(sorted(allowed)) or "none"
            errors.append(
                (
                    ("trigger", name),
                    f"'{name}' does not apply to {trigger.event} (filters: {hint})",
                )
            )
    ids = [playbook.step_id(i) for i in range(len(playbook.steps))]
    seen: set[str] = set()
    for index, step_id in enumerate(ids):
        if step_id in seen:
            errors.append((("steps", index, "id"), f"step id {step_id!r} is used twice"))
        seen.add(step_id)
    for index, step in enumerate(playbook.steps):
        for key, target in _targets(step):
            if target != "stop" and target not in seen:
                path: KeyPath = ("steps", index, *key.split("."))
                errors.append((path, f"no step with id {target!r} (steps: {', '.join(ids)})"))
        if step.send is not None and step.send.channel == "welcome":
            if trigger.event != "customer_added":
                errors.append(
                    (
                        ("steps", index, "send", "channel"),
                        "a welcome message needs the customer_added trigger (its WelcomeCode)",
                    )
                )
            elif (
                index != 0
                or step.at is not None
                or (
                    step.after is not None
                    and (step.after.at is not None or step.after.delay > timedelta(seconds=10))
                )
            ):
                errors.append(
                    (
                        ("steps", index, "send", "channel"),
                        "a welcome message must be the first step and go at once "
                        "(the WelcomeCode is valid for 20 seconds)",
                    )
                )
        if step.send is not None and step.send.channel == "mp" and not step.send.account:
            errors.append((("steps", index, "send", "account"), "an mp message needs 'account'"))
    return errors
