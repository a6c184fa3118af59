"""Task cards: a press changes the task, and the card is updated to show what became of it.

The nudge (or a campaign) sent a button card whose keys are ``task:<id>:done|snooze|skip``.
:class:`CardPresses` is the card route for those presses: it applies the transition
(:mod:`sop.tasks.state`) for the task's own staff member and enqueues an outbox row on the
``wecom_card_update`` channel that turns the card into its new state with the press's
``response_code`` (the platform takes each code once, within 72 hours). A typed command
updates the card too, with the code the card's own send returned. A card sent again (a
snooze that ran out) gets a new ``task_id``, as the platform wants them unique per app.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.clock import Clock
from sop.delivery.messages import STAFF_APP, Button, Payload, button_card
from sop.delivery.outbox import enqueue
from sop.events import CardPressed
from sop.settings import TaskSettings
from sop.tasks import state
from sop.tasks.listing import local, subjects
from store.models import OutboxRow, Task, TaskState

log = logging.getLogger(__name__)

#: Outbox channel of card updates (``message/update_template_card``): not customer-facing.
CARD_UPDATE = "wecom_card_update"
#: A response code is good for 72 hours (DOC 94888).
RESPONSE_CODE_VALIDITY = timedelta(hours=72)
CARD_TEXT = 120
BUTTON_KEY = re.compile(r"^task:(\d+):(done|snooze|skip)$")


@dataclass(frozen=True)
class SentCard:
    """The latest card of a task, as its outbox row holds it."""

    key: str
    card: dict[str, Any]
    response_code: str | None


def label(task: Task, zone: ZoneInfo) -> str:
    """The task's state as the card and the replies show it."""
    if task.state == TaskState.SNOOZED and task.snoozed_until is not None:
        return f"Snoozed until {local(task.snoozed_until, zone)}"
    return {
        TaskState.OPEN: "Open",
        TaskState.SNOOZED: "Snoozed",
        TaskState.DONE: "✅ Done",
        TaskState.SKIPPED: "Not relevant",
        TaskState.EXPIRED: "Expired",
        TaskState.REASSIGNED: "Reassigned",
    }[task.state]


def task_card(task: Task, subject: str | None, *, resend: int = 0) -> Payload:
    """The button card of ``task`` (the nudge's buttons); ``resend`` > 0 for a card sent
    again, which needs a task_id of its own."""
    description = f"{subject}: {task.script}" if subject else task.script
    if len(description) > CARD_TEXT:
        description = description[: CARD_TEXT - 1] + "…"
    card_id = f"task-{task.id}" if not resend else f"task-{task.id}-r{resend}"
    return button_card(
        task_id=card_id,
        title=task.title,
        description=description,
        buttons=[
            Button("Done", f"task:{task.id}:done", 1),
            Button("Snooze 1 h", f"task:{task.id}:snooze", 2),
            Button("Not relevant", f"task:{task.id}:skip", 2),
        ],
    )


def updated_card(card: dict[str, Any], text: str, detail: str) -> dict[str, Any]:
    """``card`` (a sent ``template_card``) showing ``detail`` under its title, its buttons
    replaced by one grey ``text`` (``replace_text``)."""
    new = copy.deepcopy(card)
    title = dict(new.get("main_title") or {})
    title["desc"] = detail[:CARD_TEXT]
    new["main_title"] = title
    new["replace_text"] = text
    return new


async def latest_card(session: AsyncSession, task_id: int) -> SentCard | None:
    """The newest card sent for ``task_id`` (a nudge's, a campaign's or a resent one)."""
    c = OutboxRow.metadata.tables[OutboxRow.__tablename__].c
    card_id = c.payload[("template_card", "task_id")].as_string()
    row = (
        await session.execute(
            select(c.idempotency_key, c.payload, c.platform_ids)
            .where(
                or_(
                    card_id == f"task-{task_id}",
                    c.idempotency_key.like(f"task:{task_id}:card:%"),
                )
            )
            .order_by(c.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    key, payload, platform_ids = row
    code = (platform_ids or {}).get("response_code")
    return SentCard(key, dict(payload.get("template_card") or {}), str(code) if code else None)


async def update_card(
    session: AsyncSession,
    task: Task,
    *,
    response_code: str | None,
    zone: ZoneInfo,
    now: datetime,
) -> bool:
    """Enqueue the update of the task's card to its present state; False when there is no
    card or no response code to update it with (the card then stays as it was)."""
    sent = await latest_card(session, task.id)
    code = response_code or (sent.response_code if sent else None)
    if sent is None or not code:
        return False
    text = label(task, zone)
    by = task.history[-1].get("by", "") if task.history else ""
    detail = f"{text} · {local(now, zone)}" + (f" · {by}" if by else "")
    payload = {"response_code": code, "template_card": updated_card(sent.card, text, detail)}
    return await enqueue(
        session,
        key=f"task:{task.id}:update:{len(task.history)}:{code}"[:200],
        channel=CARD_UPDATE,
        recipient=task.staff_userid,
        payload=payload,
        due_at=now,
        expires_at=now + RESPONSE_CODE_VALIDITY,
        customer_id=task.customer_id,
        now=now,
    )


async def send_card(
    session: AsyncSession, task: Task, *, due_at: datetime, now: datetime, first: bool = False
) -> bool:
    """Send the task's card: its ``first`` (a reassigned task's), or again after a snooze,
    under a new task_id."""
    n = len(task.history)
    subject = (await subjects(session, [task])).get(task.id)
    return await enqueue(
        session,
        key=f"task:{task.id}:card:{n}",
        channel=STAFF_APP,
        recipient=task.staff_userid,
        payload=task_card(task, subject, resend=0 if first else n),
        due_at=due_at,
        customer_id=task.customer_id,
        now=now,
    )


class CardPresses:
    """The card route of task cards: ``CardRoutes(bus).on("task:", CardPresses(...))``."""

    def __init__(self, settings: TaskSettings, clock: Clock, zone: ZoneInfo) -> None:
        self._settings = settings
        self._clock = clock
        self._zone = zone

    async def __call__(self, session: AsyncSession, event: CardPressed) -> None:
        match = BUTTON_KEY.match(event.event_key)
        if match is None:
            log.warning(
                "card %r pressed by %s with key %r: not a task button (task:<id>:done|snooze|"
                "skip); ignored",
                event.task_id,
                event.staff_userid,
                event.event_key,
            )
            return
        task_id, action = int(match.group(1)), match.group(2)
        task = await state.task_for_update(session, task_id)
        if task is None or task.staff_userid != event.staff_userid:
            log.warning(
                "card %r: %s pressed %r on task %s, which %s; nothing changed",
                event.task_id,
                event.staff_userid,
                action,
                task_id,
                "does not exist" if task is None else f"belongs to {task.staff_userid}",
            )
            return
        now = self._clock.now()
        by = event.staff_userid
        if action == "done":
            await state.done(session, task, by=by, now=now)
        elif action == "skip":
            await state.skip(session, task, by=by, now=now)
        else:
            state.snooze(task, now + self._settings.snooze, by=by, now=now)
        await update_card(
            session, task, response_code=event.response_code, zone=self._zone, now=now
        )
