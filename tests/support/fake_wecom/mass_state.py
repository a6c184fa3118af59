"""The fake corp's mass messages (企业群发): tasks waiting for staff, and what they delivered.

``add_msg_template`` creates a :class:`MassMessage` with one :class:`MassTask` per sending
staff member; nothing is delivered until the test makes that member confirm it
(:meth:`FakeCorp.confirm_mass`), as a person would in the WeCom client. At that moment each
recipient gets its status the way the platform decides it: 2 when the customer is no longer
the member's contact, 3 when the customer (or group) already received its share of mass
messages (one a calendar day by default, ``monthly_limit`` when an admin lowered it), else 1.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.outbound import Delivery

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp

#: The platform counts days in China time.
CHINA = timezone(timedelta(hours=8))
NOT_SENT, SENT, NOT_A_CONTACT, OVER_LIMIT = 0, 1, 2, 3
TASK_NOT_SENT, TASK_SENT = 0, 2


@dataclass
class MassTarget:
    recipient: str  # external_userid or chat_id
    status: int = NOT_SENT
    send_time: datetime | None = None


@dataclass
class MassTask:
    userid: str
    targets: dict[str, MassTarget] = field(default_factory=dict)
    status: int = TASK_NOT_SENT
    send_time: datetime | None = None


@dataclass
class MassMessage:
    msgid: str
    chat_type: str  # single | group
    body: dict[str, Any]
    created_at: datetime
    tasks: dict[str, MassTask] = field(default_factory=dict)
    cancelled_at: datetime | None = None
    reminders: list[datetime] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        """An entry of ``group_msg_list`` (API-created: no ``creator``, ``create_type`` 0)."""
        entry: dict[str, Any] = {
            "msgid": self.msgid,
            "create_time": int(self.created_at.timestamp()),
            "create_type": 0,
        }
        if self.body.get("text"):
            entry["text"] = dict(self.body["text"])
        if self.body.get("attachments"):
            entry["attachments"] = list(self.body["attachments"])
        return entry


@dataclass
class MassBook:
    messages: dict[str, MassMessage] = field(default_factory=dict)
    #: When each customer or group really received a mass message.
    received: defaultdict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    daily_limit: int = 1
    #: None: only the daily limit; an admin may lower it to N a month.
    monthly_limit: int | None = None
    reminders_per_day: int = 3
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_msgid(self) -> str:
        return f"msgFakeMass{next(self._ids):018d}"

    def over_limit(self, recipient: str, now: datetime) -> bool:
        """True when ``recipient`` may receive no more mass messages at ``now``."""
        day = now.astimezone(CHINA)
        times = [t.astimezone(CHINA) for t in self.received[recipient]]
        today = sum(1 for t in times if t.date() == day.date())
        month = sum(1 for t in times if (t.year, t.month) == (day.year, day.month))
        if today >= self.daily_limit:
            return True
        return self.monthly_limit is not None and month >= self.monthly_limit

    def remind(self, message: MassMessage, now: datetime) -> bool:
        """Count one reminder; False when the day's reminders are used up."""
        recent = [t for t in message.reminders if t > now - timedelta(hours=24)]
        if len(recent) >= self.reminders_per_day:
            return False
        message.reminders.append(now)
        return True


def confirm_task(
    corp: FakeCorp, msgid: str, userid: str | None, chat_ids: list[str] | None
) -> None:
    """What happens when a staff member presses send: see :meth:`FakeCorp.confirm_mass`."""
    message = corp.mass.messages.get(msgid)
    if message is None:
        raise KeyError(f"fake WeCom has no mass message {msgid!r}")
    if userid is None:
        if len(message.tasks) != 1:
            raise ValueError(
                f"mass message {msgid} has tasks for {sorted(message.tasks)}: name one"
            )
        userid = next(iter(message.tasks))
    task = message.tasks.get(userid)
    if task is None or task.status == TASK_SENT or message.cancelled_at is not None:
        raise ValueError(f"{userid!r} has no mass message {msgid} left to send")
    now = corp.now()
    task.status, task.send_time = TASK_SENT, now
    if message.chat_type == "group":
        chosen = chat_ids if chat_ids is not None else list(task.targets)
        if not chosen and chat_ids is None:
            chosen = [g.chat_id for g in corp.groups.values() if g.owner == userid]
        task.targets = {chat_id: MassTarget(chat_id) for chat_id in chosen}
    for target in task.targets.values():
        target.status = _fate(corp, message, userid, target.recipient, now)
        if target.status == SENT:
            target.send_time = now
            corp.mass.received[target.recipient].append(now)
            corp.outbound.deliveries.append(
                Delivery(
                    "externalcontact/add_msg_template",
                    target.recipient,
                    dict(message.body),
                    now,
                    msgid,
                )
            )


def _fate(corp: FakeCorp, message: MassMessage, userid: str, recipient: str, now: datetime) -> int:
    if message.chat_type == "single":
        customer = corp.customers.get(recipient)
        if customer is None or userid not in customer.follows:
            return NOT_A_CONTACT
    else:
        group = corp.groups.get(recipient)
        if group is None or group.owner != userid:
            return NOT_A_CONTACT
    return OVER_LIMIT if corp.mass.over_limit(recipient, now) else SENT
