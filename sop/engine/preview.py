"""``scrm playbook preview``: one customer through one playbook over simulated days.

The real engine runs (enroll, agenda, every step executor, the renderer) in a scratch SQLite
database on a simulated clock that jumps from one due step to the next, so days pass in
milliseconds and what is shown is what production would do. Nothing is sent and the real
database is only read: outbox rows and tasks land in the scratch database, which is deleted.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.delivery.messages import summarize
from sop.engine.catalog import register
from sop.engine.enroll import enroll
from sop.engine.runner import Engine
from sop.engine.steps.base import Renderer
from sop.engine.subscribe import EngineSubscriber
from sop.events import MessageReceived
from sop.playbooks.model import Playbook
from sop.settings import SopSettings
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import AgendaItem, AgendaState, Enrollment, OutboxRow, StepRun, Task

#: Seeds the scratch database with the customer; returns the customer's id.
Seeder = Callable[[AsyncSession], Awaitable[int]]
REPLY_TEXT = "好的，谢谢"


class SimulatedClock:
    """The preview's time: set by the loop, never by the wall clock."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = max(self._now, when)


@dataclass(frozen=True)
class PreviewLine:
    at: datetime
    step_id: str
    action: str
    outcome: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class PreviewMessage:
    created_at: datetime
    due_at: datetime
    channel: str
    recipient: str
    summary: str


@dataclass(frozen=True)
class PreviewTask:
    created_at: datetime
    due_at: datetime
    staff_userid: str
    title: str
    script: str


@dataclass
class PreviewResult:
    playbook: str
    start: datetime
    enrolled: bool
    skip: str = ""
    lines: list[PreviewLine] = field(default_factory=list)
    messages: list[PreviewMessage] = field(default_factory=list)
    tasks: list[PreviewTask] = field(default_factory=list)
    state: str = ""
    end_reason: str | None = None


def trigger_context(playbook: Playbook, now: datetime) -> dict[str, Any]:
    """What the trigger's event would have carried (a welcome code, the message said)."""
    trigger = playbook.trigger
    if trigger.event == "customer_added":
        channel = trigger.channel[0] if trigger.channel else None
        return {"welcome_code": "PREVIEW", "added_at": now.isoformat(), "channel": channel}
    if trigger.event == "message_received":
        keyword = trigger.keywords[0] if trigger.keywords else None
        return {"text": keyword or "你好", "keyword": keyword, "chat_type": "single"}
    return {}


async def run_preview(  # noqa: PLR0913 - every input is one the operator chooses
    playbook: Playbook,
    *,
    seed: Seeder,
    renderer: Renderer,
    settings: SopSettings,
    zone_default: str,
    start: datetime,
    days: int = 14,
    replies: Sequence[timedelta] = (),
) -> PreviewResult:
    """Enroll the seeded customer at ``start`` and run until ``days`` have passed or the
    enrollment ends; ``replies`` are offsets from ``start`` at which the customer writes."""
    with tempfile.TemporaryDirectory(prefix="scrm-preview-") as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'preview.db'}")
        try:
            await upgrade(engine)
            sessions = session_factory(engine)
            clock = SimulatedClock(start)
            async with sessions.begin() as session:
                customer_id = await seed(session)
                catalog = await register(session, {playbook.name: playbook}, now=start)
                result = await enroll(
                    session,
                    catalog=catalog,
                    playbook_name=playbook.name,
                    customer_id=customer_id,
                    key=f"preview:{playbook.name}",
                    context=trigger_context(playbook, start),
                    now=start,
                    settings=settings,
                    zone_default=zone_default,
                )
            if result.enrollment is None:
                skip = f"{result.skip}: {result.detail}" if result.detail else str(result.skip)
                return PreviewResult(playbook.name, start, enrolled=False, skip=skip)
            runner = Engine(sessions, lambda: catalog, renderer, clock, settings, zone_default)
            subscriber = EngineSubscriber(
                lambda: catalog, settings=settings, clock=clock, zone_default=zone_default
            )
            horizon = start + timedelta(days=days)
            pending_replies = sorted(start + offset for offset in replies)
            await runner.run_once()
            while True:
                async with sessions() as session:
                    due = await session.scalar(
                        select(func.min(AgendaItem.due_at)).where(
                            AgendaItem.state == AgendaState.PENDING
                        )
                    )
                reply_at = pending_replies[0] if pending_replies else None
                moments = [t for t in (due, reply_at) if t is not None]
                if not moments or min(moments) > horizon:
                    break
                clock.set(min(moments))
                if reply_at is not None and reply_at <= clock.now():
                    pending_replies.pop(0)
                    async with sessions.begin() as session:
                        await subscriber(session, _reply(customer_id, clock.now()))
                await runner.run_once()
            return await _collect(sessions, playbook.name, start, result.enrollment.id)
        finally:
            await engine.dispose()


def _reply(customer_id: int, at: datetime) -> MessageReceived:
    return MessageReceived(
        occurred_at=at, source="preview", msg_type="text", text=REPLY_TEXT, customer_id=customer_id
    )


async def _collect(
    sessions: async_sessionmaker[AsyncSession], name: str, start: datetime, enrollment_id: int
) -> PreviewResult:
    async with sessions() as session:
        runs = (
            await session.scalars(
                select(StepRun)
                .where(StepRun.enrollment_id == enrollment_id)
                .order_by(StepRun.ran_at, StepRun.seq, StepRun.id)
            )
        ).all()
        rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
        tasks = (await session.scalars(select(Task).order_by(Task.id))).all()
        enrollment = await session.get(Enrollment, enrollment_id)
    assert enrollment is not None
    return PreviewResult(
        name,
        start,
        enrolled=True,
        lines=[
            PreviewLine(r.ran_at, r.step_id, r.action, r.outcome, dict(r.detail)) for r in runs
        ],
        messages=[
            PreviewMessage(r.created_at, r.due_at, r.channel, r.recipient, summarize(r.payload))
            for r in rows
        ],
        tasks=[
            PreviewTask(t.created_at, t.due_at, t.staff_userid, t.title, t.script) for t in tasks
        ],
        state=str(enrollment.state),
        end_reason=enrollment.end_reason,
    )
