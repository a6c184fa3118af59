"""The weekly digest: each manager gets their team's figures for the past seven days.

The team of a manager is every member whose manager (:class:`~sop.tasks.managers.Managers`:
configured, else the department leader) they are. Per member: tasks received, done (and of
those on time), still late now, escalated; customers added and lost. The row's key is
``tasks:weekly:<manager>:<ISO year-week>``, so the digest goes once a week whoever fires it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.delivery.messages import STAFF_APP, text
from sop.delivery.outbox import enqueue
from sop.tasks import state
from sop.tasks.listing import fit
from sop.tasks.managers import Managers
from store.models import CustomerStaff, Staff, Task, TaskState

WEEK = timedelta(days=7)
LEFT_COMPANY = 5


@dataclass
class Figures:
    """One member's week."""

    received: int = 0
    done: int = 0
    on_time: int = 0
    late_now: int = 0
    escalated: int = 0
    added: int = 0
    lost: int = 0

    def line(self, who: str) -> str:
        return (
            f"{who}: {self.received} tasks, {self.done} done ({self.on_time} on time),"
            f" {self.late_now} late now, {self.escalated} escalated;"
            f" customers +{self.added} -{self.lost}"
        )


async def figures(session: AsyncSession, since: datetime, now: datetime) -> dict[str, Figures]:
    """Every member's figures for ``[since, now)``."""
    found: defaultdict[str, Figures] = defaultdict(Figures)
    tasks = await session.scalars(
        select(Task).where(
            (Task.created_at >= since)
            | (Task.closed_at >= since)
            | (Task.escalated_at >= since)
            | Task.state.in_(state.ACTIVE)
        )
    )
    for task in tasks.all():
        mine = found[task.staff_userid]
        mine.received += since <= task.created_at < now
        closed = task.closed_at
        if task.state == TaskState.DONE and closed is not None and since <= closed < now:
            mine.done += 1
            mine.on_time += closed <= task.due_at
        if task.state in state.ACTIVE and task.due_at <= now:
            mine.late_now += 1
        if task.escalated_at is not None and since <= task.escalated_at < now:
            mine.escalated += 1
    follows = await session.execute(
        select(CustomerStaff.staff_userid, CustomerStaff.added_at, CustomerStaff.removed_at).where(
            (CustomerStaff.added_at >= since) | (CustomerStaff.removed_at >= since)
        )
    )
    for staff, added_at, removed_at in follows.all():
        mine = found[staff]
        mine.added += added_at is not None and since <= added_at < now
        mine.lost += removed_at is not None and since <= removed_at < now
    return dict(found)


class WeeklyDigest:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        managers: Managers,
        clock: Clock,
        zone: ZoneInfo,
    ) -> None:
        self._sessions = sessions
        self._managers = managers
        self._clock = clock
        self._zone = zone

    async def run(self) -> int:
        """Enqueue this week's digests; how many managers got one."""
        now = self._clock.now()
        since = now - WEEK
        async with self._sessions() as session:
            members = dict(
                (
                    await session.execute(
                        select(Staff.userid, Staff.name).where(
                            (Staff.status.is_(None)) | (Staff.status != LEFT_COMPANY)
                        )
                    )
                ).all()
            )
            week = await figures(session, since, now)
        userids = sorted({*members, *week})
        managers = await self._managers.managers_of(userids)
        teams: defaultdict[str, list[str]] = defaultdict(list)
        for userid in userids:
            manager = managers.get(userid)
            if manager is not None and manager != userid:
                teams[manager].append(userid)
        year, number, _ = now.astimezone(self._zone).isocalendar()
        first = since.astimezone(self._zone).strftime("%m-%d")
        last = now.astimezone(self._zone).strftime("%m-%d")
        sent = 0
        async with self._sessions.begin() as session:
            for manager, team in sorted(teams.items()):
                total = Figures()
                lines = [f"📊 Your team, {first} – {last}"]
                for userid in team:
                    mine = week.get(userid, Figures())
                    lines.append("• " + mine.line(f"{members.get(userid) or userid}"))
                    for name in vars(total):
                        setattr(total, name, getattr(total, name) + getattr(mine, name))
                lines.append(total.line(f"Team ({len(team)})"))
                sent += await enqueue(
                    session,
                    key=f"tasks:weekly:{manager}:{year}-W{number:02d}",
                    channel=STAFF_APP,
                    recipient=manager,
                    payload=text(fit(lines)),
                    due_at=now,
                    now=now,
                )
        return sent
