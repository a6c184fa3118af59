"""Staff answer the app in chat: ``done 42``, ``snooze 42 2h``, ``skip 42``, ``tasks``.

A text a staff member sends to the app (``MessageReceived`` with ``staff_userid``) is read
as a command when its first word is one; anything else is left alone (the app may be used
for other things). Chinese works too: 完成 42, 稍后 42 2h, 跳过 42, 转交 42 lisi, 任务.
The answer is a text app message to the same member, enqueued in the transaction that
processes the message (one per callback: a reprocessed callback answers nothing twice).
Inside an inbox batch it opens the row's savepoint only for a command (:mod:`store.batch`), so
other messages cost the batch no statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.clock import Clock
from sop.delivery.messages import STAFF_APP, text
from sop.delivery.outbox import enqueue
from sop.events import MessageReceived
from sop.playbooks.durations import parse_duration
from sop.settings import TaskSettings
from sop.tasks import state
from sop.tasks.cards import label, send_card, update_card
from sop.tasks.listing import fit, subjects, task_line
from store.batch import Batch
from store.models import Task

VERBS = {
    "done": "done",
    "完成": "done",
    "ok": "done",
    "snooze": "snooze",
    "稍后": "snooze",
    "延后": "snooze",
    "skip": "skip",
    "跳过": "skip",
    "不相关": "skip",
    "reassign": "reassign",
    "转交": "reassign",
    "tasks": "tasks",
    "任务": "tasks",
    "待办": "tasks",
    "help": "help",
    "帮助": "help",
}
USAGE = (
    "Commands: `tasks` (任务) lists your open tasks; `done 42` (完成 42); `snooze 42 2h`"
    " (稍后 42 2h); `skip 42` (跳过 42, not relevant); `reassign 42 userid` (转交 42 userid)."
)
_ID = re.compile(r"^#?(\d{1,18})$")
_CN_UNITS = {"分钟": "m", "小时": "h", "天": "d"}


@dataclass(frozen=True)
class Command:
    verb: str
    task_id: int | None = None
    snooze: timedelta | None = None
    to: str | None = None


class CommandError(ValueError):
    """A command word with arguments that do not fit; the message is the answer."""


def parse(message: str) -> Command | None:
    """The command in ``message``, None when its first word is not one."""
    words = message.strip().split()
    if not words or words[0].lower() not in VERBS:
        return None
    verb = VERBS[words[0].lower()]
    args = words[1:]
    if verb in ("tasks", "help"):
        return Command(verb)
    if not args or not _ID.match(args[0]):
        raise CommandError(f"`{words[0]}` needs a task number, e.g. `{words[0]} 42`. {USAGE}")
    task_id = int(_ID.match(args[0]).group(1))  # type: ignore[union-attr]
    if verb == "snooze":
        return Command(verb, task_id, snooze=_duration(args[1]) if len(args) > 1 else None)
    if verb == "reassign":
        if len(args) < 2:
            raise CommandError(f"`{words[0]} {task_id}` needs whom to, e.g. `reassign 42 lisi`")
        return Command(verb, task_id, to=args[1])
    return Command(verb, task_id)


def _duration(word: str) -> timedelta:
    for unit, short in _CN_UNITS.items():
        word = word.replace(unit, short)
    try:
        return parse_duration(word)
    except ValueError:
        raise CommandError(f"snooze for how long? {word!r} is not 30m, 2h or 1d") from None


async def _savepoint(session: AsyncSession) -> None:
    batch = Batch.of(session)
    if batch is not None:
        await batch.savepoint()


class StaffCommands:
    """The ``MessageReceived`` subscriber that answers staff commands."""

    def __init__(self, settings: TaskSettings, clock: Clock, zone: ZoneInfo) -> None:
        self._settings = settings
        self._clock = clock
        self._zone = zone

    async def __call__(self, session: AsyncSession, event: MessageReceived) -> None:
        staff = event.staff_userid
        if not staff or event.msg_type != "text" or not event.source.startswith("wecom:"):
            return
        try:
            command = parse(event.text)
        except CommandError as exc:
            answer = str(exc)
        else:
            if command is None:
                return
            await _savepoint(session)
            answer = await self.run(session, staff, command)
        ref = event.inbox_id if event.inbox_id is not None else event.msg_id
        now = self._clock.now()
        await _savepoint(session)
        await enqueue(
            session,
            key=f"tasks:reply:{staff}:{ref or now.isoformat()}",
            channel=STAFF_APP,
            recipient=staff,
            payload=text(answer),
            due_at=now,
            now=now,
        )

    async def run(self, session: AsyncSession, staff: str, command: Command) -> str:
        if command.verb == "help":
            return USAGE
        if command.verb == "tasks":
            return await self.listing(session, staff)
        assert command.task_id is not None
        task = await state.task_for_update(session, command.task_id)
        if task is None or task.staff_userid != staff:
            return f"Task {command.task_id} is not one of yours. Reply `tasks` for your list."
        now = self._clock.now()
        new: Task | None = None
        if command.verb == "done":
            change = await state.done(session, task, by=staff, now=now)
        elif command.verb == "skip":
            change = await state.skip(session, task, by=staff, now=now)
        elif command.verb == "snooze":
            length = min(command.snooze or self._settings.snooze, self._settings.max_snooze)
            change = state.snooze(task, now + length, by=staff, now=now)
        else:
            assert command.to is not None
            change, new = await state.reassign(session, task, command.to, by=staff, now=now)
        if not change.changed:
            return f"Task {task.id} is already {label(task, self._zone).lower()}: nothing changed."
        await update_card(session, task, response_code=None, zone=self._zone, now=now)
        if new is not None:
            await send_card(session, new, due_at=now, now=now, first=True)
            return f"Task {task.id} is now {command.to}'s (task {new.id})."
        return f"Task {task.id} ({task.title}): {label(task, self._zone)}."

    async def listing(self, session: AsyncSession, staff: str) -> str:
        tasks = list(
            (
                await session.scalars(
                    select(Task)
                    .where(Task.staff_userid == staff, Task.state.in_(state.ACTIVE))
                    .order_by(Task.due_at, Task.id)
                )
            ).all()
        )
        if not tasks:
            return "No open tasks. 🎉"
        names = await subjects(session, tasks)
        lines = [f"Your open tasks ({len(tasks)}):"]
        for task in tasks:
            line = task_line(task, names.get(task.id), self._zone)
            if task.snoozed_until is not None:
                line += f" [{label(task, self._zone).lower()}]"
            lines.append(line)
        lines.append("Reply `done 42`, `snooze 42 2h` or `skip 42`.")
        return fit(lines)
