"""Staff performance over a period, per member and per team (main department).

- First response: for each customer message (inbound, private) in the period, the time to
  the next outgoing message to that customer or the next task about them marked done,
  whichever comes first. Only the first of several messages in a row counts (a customer
  who writes three times before an answer waited once). The wait belongs to the member the
  message was addressed to (its ``staff_userid``), else to whoever answered. Messages not
  answered by the end of the period are counted as ``unanswered``. Median and p90 use the
  nearest rank.
- Tasks due in the period: done on time (closed done by the due time), done late, and
  nudges ignored (``expired``).
- Customers added (relationships that began in the period) and lost (ended in the period
  by the customer or the member; a transfer is not a loss).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import CustomerStaff, Direction, Interaction, Staff, Task, TaskState

COLUMNS = (
    "who",
    "team",
    "messages",
    "unanswered",
    "median_response_s",
    "p90_response_s",
    "tasks_due",
    "done_on_time",
    "done_late",
    "ignored",
    "customers_added",
    "customers_lost",
)


@dataclass
class Figures:
    who: str
    team: str
    waits: list[float] = field(default_factory=list)
    unanswered: int = 0
    tasks_due: int = 0
    done_on_time: int = 0
    done_late: int = 0
    ignored: int = 0
    added: int = 0
    lost: int = 0

    def merge(self, other: Figures) -> None:
        self.waits += other.waits
        for name in ("unanswered", "tasks_due", "done_on_time", "done_late", "ignored"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.added += other.added
        self.lost += other.lost

    def row(self) -> dict[str, object]:
        return {
            "who": self.who,
            "team": self.team,
            "messages": len(self.waits) + self.unanswered,
            "unanswered": self.unanswered,
            "median_response_s": percentile(self.waits, 50),
            "p90_response_s": percentile(self.waits, 90),
            "tasks_due": self.tasks_due,
            "done_on_time": self.done_on_time,
            "done_late": self.done_late,
            "ignored": self.ignored,
            "customers_added": self.added,
            "customers_lost": self.lost,
        }


@dataclass
class StaffReport:
    start: datetime
    end: datetime
    members: list[Figures]
    teams: list[Figures]

    def rows(self) -> list[dict[str, object]]:
        return [f.row() for f in [*self.members, *self.teams]]

    def write_csv(self, out: IO[str]) -> None:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows())


def percentile(values: Iterable[float], pct: int) -> float | None:
    """Nearest-rank percentile, in seconds rounded to one decimal; None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return round(ordered[rank - 1], 1)


async def staff_report(session: AsyncSession, start: datetime, end: datetime) -> StaffReport:
    if end <= start:
        raise ValueError(f"report period ends ({end}) before it starts ({start}): swap them")
    teams = {
        userid: f"dept {dept}" if dept is not None else "-"
        for userid, dept in (await session.execute(select(Staff.userid, Staff.main_department)))
    }
    figures: dict[str, Figures] = {}

    def of(userid: str) -> Figures:
        if userid not in figures:
            figures[userid] = Figures(userid, teams.get(userid, "-"))
        return figures[userid]

    await _responses(session, start, end, of)
    for task in await session.scalars(select(Task).where(Task.due_at >= start, Task.due_at < end)):
        if task.state is TaskState.REASSIGNED:
            continue
        member = of(task.staff_userid)
        member.tasks_due += 1
        if task.state is TaskState.DONE and task.closed_at is not None:
            if task.closed_at <= task.due_at:
                member.done_on_time += 1
            else:
                member.done_late += 1
        elif task.state is TaskState.EXPIRED:
            member.ignored += 1
    for follow in await session.scalars(select(CustomerStaff)):
        if follow.added_at is not None and start <= follow.added_at < end:
            of(follow.staff_userid).added += 1
        removed = follow.removed_at
        if removed is not None and follow.removed_by is not None and start <= removed < end:
            of(follow.staff_userid).lost += 1
    members = sorted(figures.values(), key=lambda f: f.who)
    by_team: dict[str, Figures] = {}
    for member in members:
        team = by_team.setdefault(member.team, Figures(f"team {member.team}", member.team))
        team.merge(member)
    return StaffReport(start, end, members, [by_team[t] for t in sorted(by_team)])


async def _responses(
    session: AsyncSession, start: datetime, end: datetime, of: Callable[[str], Figures]
) -> None:
    done: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for task in await session.scalars(
        select(Task).where(
            Task.state == TaskState.DONE,
            Task.customer_id.is_not(None),
            Task.closed_at >= start,
        )
    ):
        assert task.customer_id is not None and task.closed_at is not None
        done[task.customer_id].append((task.closed_at, task.staff_userid))
    entries = await session.scalars(
        select(Interaction)
        .where(
            Interaction.customer_id.is_not(None),
            Interaction.group_id.is_(None),
            Interaction.direction.in_((Direction.INBOUND, Direction.OUTBOUND)),
            Interaction.occurred_at >= start,
            Interaction.occurred_at < end,
        )
        .order_by(Interaction.customer_id, Interaction.occurred_at, Interaction.id)
    )
    timeline: dict[int, list[tuple[datetime, bool, str | None]]] = defaultdict(list)
    for entry in entries:
        assert entry.customer_id is not None
        inbound = entry.direction is Direction.INBOUND
        timeline[entry.customer_id].append((entry.occurred_at, inbound, entry.staff_userid))
    for customer_id, closes in done.items():
        for closed_at, closer in closes:
            if closed_at < end:
                timeline[customer_id].append((closed_at, False, closer))
    for events in timeline.values():
        events.sort(key=lambda e: (e[0], not e[1]))
        waiting: tuple[datetime, str | None] | None = None
        for at, is_inbound, userid in events:
            if is_inbound:
                waiting = waiting or (at, userid)
            elif waiting is not None:
                answerer = waiting[1] or userid
                if answerer:
                    of(answerer).waits.append((at - waiting[0]).total_seconds())
                waiting = None
        if waiting is not None and waiting[1]:
            of(waiting[1]).unanswered += 1
