"""Does a domain event fire a playbook's trigger, and what does the enrollment keep of it?

One function per event kind, each reading the trigger's filters for that kind (the loader
has already refused filters that do not apply). A match carries the enrollment key, unique
per playbook, customer and occurrence (the inbox row when there is one, so a reprocessed
callback enrolls nobody twice), and the context templates may use: the welcome code of an
add, the words a customer said, the group they joined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sop.events import (
    CustomerAdded,
    CustomerRemoved,
    DomainEvent,
    JoinedGroup,
    LeftGroup,
    MessageReceived,
    TagAdded,
    TagRemoved,
)
from sop.playbooks.model import Trigger
from store.models import CustomerGroup, Tag

#: The trigger name of each event class the engine reacts to.
EVENT_NAMES: dict[type[DomainEvent], str] = {
    CustomerAdded: "customer_added",
    MessageReceived: "message_received",
    JoinedGroup: "joined_group",
    LeftGroup: "left_group",
    TagAdded: "tag_added",
    TagRemoved: "tag_removed",
    CustomerRemoved: "customer_removed",
}

_CHAT_TYPES = {"private": "single", "group": "group"}


@dataclass(frozen=True)
class Match:
    """A fired trigger: who enrolls, under which key, keeping what."""

    customer_id: int
    key: str
    context: dict[str, Any] = field(default_factory=dict)
    group_id: int | None = None
    #: The staff member the event names (who added the customer); else the owner is used.
    staff_userid: str | None = None


def event_name(event: DomainEvent) -> str | None:
    return EVENT_NAMES.get(type(event))


def is_customer_message(event: DomainEvent) -> bool:
    """A message a customer wrote (not a staff member writing to the app)."""
    return (
        isinstance(event, MessageReceived)
        and event.customer_id is not None
        and event.staff_userid is None
    )


def enrollment_key(playbook: str, customer_id: int, event: DomainEvent) -> str:
    """``onboarding:c42:inbox:1001``, or the event's time when it came from no inbox row."""
    identity = (
        f"inbox:{event.inbox_id}"
        if event.inbox_id is not None
        else f"at:{event.occurred_at.isoformat()}"
    )
    return f"{playbook}:c{customer_id}:{identity}"


def found_keyword(words: list[str], text: str) -> str | None:
    """The first of ``words`` contained in ``text``, ignoring case."""
    folded = text.casefold()
    return next((word for word in words if word.casefold() in folded), None)


async def tag_matches(session: AsyncSession, wanted: str, tag_id: int, tag_name: str) -> bool:
    """``wanted`` is the tag's name, or ``group/name`` to tell apart equal names in groups."""
    if wanted == tag_name:
        return True
    group, slash, name = wanted.rpartition("/")
    if not slash or name != tag_name:
        return False
    tag = await session.get(Tag, tag_id)
    return tag is not None and tag.group_name == group


async def match(
    session: AsyncSession, playbook: str, trigger: Trigger, event: DomainEvent
) -> Match | None:
    """The enrollment ``event`` starts in ``playbook`` (whose trigger is ``trigger``), if any.

    Audience, opt-out and re-entry are not judged here but by :func:`sop.engine.enroll.enroll`.
    """
    if trigger.event is None or trigger.event != event_name(event):
        return None
    if isinstance(event, TagAdded | TagRemoved):
        wanted = trigger.tag or ""
        hit = await tag_matches(session, wanted, event.tag_id, event.tag_name)
        context = {"tag": event.tag_name, "tag_id": event.tag_id} if hit else None
        return _matched(playbook, trigger, event, context)
    group_name: str | None = None
    if isinstance(event, JoinedGroup | LeftGroup):
        group = await session.get(CustomerGroup, event.group_id)
        group_name = group.name if group is not None else None
    return match_known(playbook, trigger, event, group_name=group_name)


def match_known(
    playbook: str, trigger: Trigger, event: DomainEvent, *, group_name: str | None = None
) -> Match | None:
    """:func:`match` for what needs no statement: every event but tag changes, with the
    group's name given for group events."""
    if trigger.event is None or trigger.event != event_name(event):
        return None
    context: dict[str, Any] | None
    staff: str | None = None
    group_id: int | None = None
    if isinstance(event, CustomerAdded):
        context = _customer_added(trigger, event)
        staff = event.staff_userid
    elif isinstance(event, MessageReceived):
        context = _message(trigger, event)
        group_id = event.group_id
    elif isinstance(event, JoinedGroup | LeftGroup):
        context = _group(trigger, event, group_name)
        group_id = event.group_id
    elif isinstance(event, CustomerRemoved):
        hit = trigger.by in ("any", event.removed_by)
        context = {"removed_by": event.removed_by, "staff_userid": event.staff_userid}
        context = context if hit else None
    else:
        return None
    return _matched(playbook, trigger, event, context, group_id=group_id, staff=staff)


def _matched(
    playbook: str,
    trigger: Trigger,
    event: DomainEvent,
    context: dict[str, Any] | None,
    *,
    group_id: int | None = None,
    staff: str | None = None,
) -> Match | None:
    customer_id = getattr(event, "customer_id", None)
    if context is None or customer_id is None:
        return None
    context = {"event": trigger.event, "occurred_at": event.occurred_at.isoformat(), **context}
    key = enrollment_key(playbook, customer_id, event)
    return Match(customer_id, key, context, group_id=group_id, staff_userid=staff)


def _customer_added(trigger: Trigger, event: CustomerAdded) -> dict[str, Any] | None:
    if event.half:
        return None  # not a contact yet: nothing can be sent, the full add follows
    if trigger.channel and event.channel_state not in trigger.channel:
        return None
    return {
        "welcome_code": event.welcome_code,
        "added_at": event.occurred_at.isoformat(),
        "channel": event.channel_state,
        "staff_userid": event.staff_userid,
    }


def _message(trigger: Trigger, event: MessageReceived) -> dict[str, Any] | None:
    if not is_customer_message(event):
        return None
    if trigger.chat != "any" and event.chat_type != _CHAT_TYPES[trigger.chat]:
        return None
    if not trigger.accepts_source(event.source):
        return None
    keyword: str | None = None
    if trigger.keywords or trigger.regex:
        keyword = found_keyword(trigger.keywords, event.text)
        if keyword is None and trigger.regex is not None:
            found = re.search(trigger.regex, event.text)
            keyword = found.group(0) if found else None
        if keyword is None:
            return None
    return {
        "text": event.text,
        "keyword": keyword,
        "msg_type": event.msg_type,
        "msg_id": event.msg_id,
        "chat_type": event.chat_type,
        "group_id": event.group_id,
    }


def _group(
    trigger: Trigger, event: JoinedGroup | LeftGroup, name: str | None
) -> dict[str, Any] | None:
    if trigger.groups and event.chat_id not in trigger.groups and name not in trigger.groups:
        return None
    return {"group_id": event.group_id, "chat_id": event.chat_id, "group_name": name}
