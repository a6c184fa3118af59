"""The daily digest: each staff member with open work gets one message at the configured hour.

What it lists, from the tables alone (no platform call): tasks due today, tasks overdue,
customers added since yesterday, and customers waiting for a reply, those whose last message
on the timeline is older than ``reply_wait_hours`` with nothing said to them since (no
outbound entry: a welcome, a mass message the member confirmed, an archived reply) and no
task about them done since. Members with nothing in any section get nothing.

The row's key is ``tasks:digest:<userid>:<local date>``: a second process firing the same
cron, or a rerun, adds nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.delivery.messages import STAFF_APP, text
from sop.delivery.outbox import enqueue
from sop.playbooks.timing import local_instant
from sop.settings import TaskSettings
from sop.tasks import state
from sop.tasks.listing import fit, local, section, subjects, task_line
from store.models import (
    Customer,
    CustomerStaff,
    Direction,
    FollowState,
    Interaction,
    Task,
    TaskState,
)


class DailyDigest:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: TaskSettings,
        clock: Clock,
        zone: ZoneInfo,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._zone = zone

    async def run(self) -> int:
        """Enqueue today's digests; how many members got one (0 when already sent)."""
        now = self._clock.now()
        day = now.astimezone(self._zone).date()
        day_end = local_instant(datetime.combine(day + timedelta(days=1), time(0)), self._zone)
        sent = 0
        async with self._sessions.begin() as session:
            tasks = list(
                (
                    await session.scalars(
                        select(Task)
                        .where(Task.state.in_(state.ACTIVE), Task.due_at < day_end)
                        .order_by(Task.due_at, Task.id)
                    )
                ).all()
            )
            names = await subjects(session, tasks)
            due: defaultdict[str, list[str]] = defaultdict(list)
            late: defaultdict[str, list[str]] = defaultdict(list)
            for task in tasks:
                line = task_line(task, names.get(task.id), self._zone)
                (late if task.due_at <= now else due)[task.staff_userid].append(line)
            new = await self.new_customers(session, now - timedelta(days=1))
            waiting = await self.waiting(session, now)
            limit = self._settings.digest_items
            for staff in sorted({*due, *late, *new, *waiting}):
                lines = [f"📋 Your day, {day.isoformat()}"]
                lines += section("Overdue", late[staff], limit)
                lines += section("Due today", due[staff], limit)
                lines += section("New customers since yesterday", new[staff], limit)
                hours = self._settings.reply_wait_hours
                lines += section(f"Waiting for a reply over {hours} h", waiting[staff], limit)
                lines.append("Reply `tasks` for your open tasks, `done 42` when one is done.")
                sent += await enqueue(
                    session,
                    key=f"tasks:digest:{staff}:{day.isoformat()}",
                    channel=STAFF_APP,
                    recipient=staff,
                    payload=text(fit(lines)),
                    due_at=now,
                    now=now,
                )
        return sent

    async def new_customers(self, session: AsyncSession, since: datetime) -> dict[str, list[str]]:
        rows = await session.execute(
            select(CustomerStaff.staff_userid, Customer.name, Customer.external_userid)
            .join(Customer, Customer.id == CustomerStaff.customer_id)
            .where(CustomerStaff.state == FollowState.ACTIVE, CustomerStaff.added_at >= since)
            .order_by(CustomerStaff.added_at)
        )
        found: defaultdict[str, list[str]] = defaultdict(list)
        for staff, name, external in rows.all():
            found[staff].append(name or external or "?")
        return found

    async def waiting(self, session: AsyncSession, now: datetime) -> dict[str, list[str]]:
        """Staff userid -> customers waiting for a reply (longest wait first)."""
        hours = self._settings.reply_wait_hours
        since = now - self._settings.reply_wait_within
        last_in = (
            select(Interaction.customer_id, func.max(Interaction.occurred_at).label("said_at"))
            .where(
                Interaction.direction == Direction.INBOUND,
                Interaction.kind == "message",
                Interaction.customer_id.is_not(None),
                Interaction.occurred_at >= since,
            )
            .group_by(Interaction.customer_id)
            .subquery()
        )
        answered = exists().where(
            Interaction.customer_id == last_in.c.customer_id,
            Interaction.direction == Direction.OUTBOUND,
            Interaction.occurred_at > last_in.c.said_at,
        )
        handled = exists().where(
            Task.customer_id == last_in.c.customer_id,
            Task.state == TaskState.DONE,
            Task.closed_at > last_in.c.said_at,
        )
        rows = await session.execute(
            select(CustomerStaff.staff_userid, Customer.name, Customer.external_userid, last_in)
            .join(Customer, Customer.id == last_in.c.customer_id)
            .join(
                CustomerStaff,
                and_(
                    CustomerStaff.customer_id == last_in.c.customer_id,
                    CustomerStaff.state == FollowState.ACTIVE,
                ),
            )
            .where(last_in.c.said_at <= now - timedelta(hours=hours), ~answered, ~handled)
            .order_by(last_in.c.said_at)
        )
        found: defaultdict[str, list[str]] = defaultdict(list)
        for staff, name, external, _customer_id, said_at in rows.all():
            waited = int((now - said_at).total_seconds() // 3600)
            who = name or external or "?"
            found[staff].append(f"{who}: last message {local(said_at, self._zone)} ({waited} h)")
        return found
