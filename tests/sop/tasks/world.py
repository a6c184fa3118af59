"""Seeding tasks, customers and cards for the task tests, and reading back what was queued."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from sop.delivery.messages import STAFF_APP
from sop.delivery.outbox import enqueue
from sop.settings import TaskSettings
from sop.tasks.cards import task_card
from store.models import Customer, CustomerStaff, OutboxRow, Staff, Task, TaskState
from tests.support.clock import ManualClock
from tests.support.database import Database

ZONE = ZoneInfo("Asia/Shanghai")
STAFF = "zhangsan"
MANAGER = "lisi"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time in November 2026 (the clock starts on the 23rd, 17:00)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=ZONE)


async def customer(
    db: Database,
    clock: ManualClock,
    name: str,
    *,
    staff: str = STAFF,
    added: datetime | None = None,
) -> int:
    async with db.sessions.begin() as session:
        row = Customer(external_userid=f"wm{name}", name=name, created_at=clock.now())
        session.add(row)
        await session.flush()
        session.add(
            CustomerStaff(
                customer_id=row.id,
                staff_userid=staff,
                added_at=added or clock.now() - timedelta(days=30),
            )
        )
        return row.id


async def staff(db: Database, clock: ManualClock, userid: str, name: str) -> None:
    async with db.sessions.begin() as session:
        session.add(Staff(userid=userid, name=name, status=1, created_at=clock.now()))


async def task(
    db: Database,
    clock: ManualClock,
    title: str = "回访",
    *,
    due_in: timedelta = timedelta(hours=1),
    owner: str = STAFF,
    customer_id: int | None = None,
    escalate_after: timedelta | None = None,
    card: bool = True,
) -> int:
    """An open task (as a nudge makes it) and, with ``card``, its card row in the outbox."""
    now = clock.now()
    async with db.sessions.begin() as session:
        row = Task(
            key=f"test:{uuid.uuid4().hex}",
            staff_userid=owner,
            customer_id=customer_id,
            origin="test",
            title=title,
            script=f"script of {title}",
            due_at=now + due_in,
            escalate_at=now + due_in + escalate_after if escalate_after else None,
            state=TaskState.OPEN,
            history=[{"at": now.isoformat(), "state": "open", "by": "test"}],
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
        if card:
            await enqueue(
                session,
                key=f"task:{row.id}:card",
                channel=STAFF_APP,
                recipient=owner,
                payload=task_card(row, None),
                due_at=now,
                now=now,
            )
        return row.id


async def get(db: Database, task_id: int) -> Task:
    async with db.sessions() as session:
        found = await session.get(Task, task_id)
        assert found is not None
        return found


async def queued(
    db: Database, *, prefix: str = "", channel: str | None = None
) -> Sequence[OutboxRow]:
    async with db.sessions() as session:
        statement = select(OutboxRow).where(OutboxRow.idempotency_key.startswith(prefix))
        if channel is not None:
            statement = statement.where(OutboxRow.channel == channel)
        return (await session.scalars(statement.order_by(OutboxRow.id))).all()


def texts(rows: Sequence[OutboxRow]) -> list[str]:
    return [
        str(row.payload["text"]["content"]) for row in rows if row.payload.get("msgtype") == "text"
    ]


SETTINGS = TaskSettings()
