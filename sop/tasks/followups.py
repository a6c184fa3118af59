"""What happens when a staff member does nothing: snoozes end, reminders, escalation, expiry.

One tick (:meth:`FollowUps.run_once`, every ``sop.tasks.tick_seconds`` from the engine
scheduler) does, each in its own transaction and on the injected clock:

1. snoozed tasks whose time is up are open again, and their card is sent again;
2. open tasks ``remind_after`` past due get one reminder, a text listing the member's late
   tasks (one message per member, not one per task);
3. tasks still open at their escalation time (the nudge's ``escalate_at``, else
   ``escalation.after`` past due; or expired then by the playbook waiting on them), at least
   ``escalation.grace`` after the reminder reached the member, are escalated once to their
   manager (:class:`~sop.tasks.managers.Managers`) with the list of what is late;
4. tasks ``expire_after`` past due are closed ``expired``.

Messages are ordinary staff app rows: a reminder that falls in quiet hours is due at their
end (``reminded_at`` records that moment, so the escalation waits for it too), and the
sender keeps every member within the platform's 30 a minute and 1000 an hour.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.clock import Clock
from sop.delivery.messages import STAFF_APP, text
from sop.delivery.outbox import enqueue
from sop.playbooks.timing import leave_quiet_hours
from sop.settings import TaskSettings
from sop.tasks import state
from sop.tasks.cards import send_card, update_card
from sop.tasks.listing import fit, local, subjects, task_line
from sop.tasks.managers import Managers
from store.models import Staff, Task, TaskState

log = logging.getLogger(__name__)
BATCH = 500
#: How long after a task expired its escalation may still go out.
RECENT = timedelta(days=1)


@dataclass(frozen=True)
class FollowUpReport:
    woken: int = 0
    reminded: int = 0
    escalated: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        return self.woken + self.reminded + self.escalated + self.expired


class FollowUps:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: TaskSettings,
        clock: Clock,
        zone: ZoneInfo,
        managers: Managers,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._zone = zone
        self.managers = managers

    def deliver_at(self, now: datetime) -> datetime:
        """When a staff message decided at ``now`` may reach them: after quiet hours."""
        quiet = self._settings.quiet_hours
        return leave_quiet_hours(now, self._zone, quiet) if quiet is not None else now

    async def run_once(self) -> FollowUpReport:
        return FollowUpReport(
            woken=await self.wake_snoozed(),
            reminded=await self.remind(),
            escalated=await self.escalate(),
            expired=await self.expire(),
        )

    async def wake_snoozed(self) -> int:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            tasks = await _locked(
                session,
                select(Task).where(Task.state == TaskState.SNOOZED, Task.snoozed_until <= now),
            )
            for task in tasks:
                state.wake(task, now=now)
                await send_card(session, task, due_at=self.deliver_at(now), now=now)
        return len(tasks)

    async def remind(self) -> int:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            tasks = await _locked(
                session,
                select(Task).where(
                    Task.state == TaskState.OPEN,
                    Task.reminded_at.is_(None),
                    Task.due_at <= now - self._settings.remind_after,
                ),
            )
            by_staff: defaultdict[str, list[Task]] = defaultdict(list)
            for task in tasks:
                by_staff[task.staff_userid].append(task)
            names = await subjects(session, tasks)
            at = self.deliver_at(now)
            for staff, late in by_staff.items():
                lines = [f"⏰ {len(late)} task(s) past due:"]
                lines += [task_line(t, names.get(t.id), self._zone) for t in late]
                lines.append("Reply `done 42` when done, `snooze 42 2h` to put one off.")
                await self._send(session, f"tasks:remind:{staff}:{late[0].id}", staff, lines, at)
                for task in late:
                    task.reminded_at = at
                    state.note(
                        task, now, by="followups", text=f"reminded ({local(at, self._zone)})"
                    )
        return len(tasks)

    async def escalate(self) -> int:
        now = self._clock.now()
        async with self._sessions() as session:
            staff = sorted({t.staff_userid for t in await self._late(session, now, lock=False)})
        if not staff:
            return 0
        managers = await self.managers.managers_of(staff)
        async with self._sessions.begin() as session:
            tasks = await self._late(session, now, lock=True)
            names = await subjects(session, tasks)
            members = await _staff_names(session, {t.staff_userid for t in tasks})
            by_staff: defaultdict[str, list[Task]] = defaultdict(list)
            for task in tasks:
                by_staff[task.staff_userid].append(task)
            at = self.deliver_at(now)
            for userid, late in by_staff.items():
                manager = managers.get(userid)
                if manager is None and userid not in managers:
                    manager = await self.managers.manager_of(userid)
                who = members.get(userid) or userid
                if manager is not None:
                    lines = [f"⚠️ {who} ({userid}) has {len(late)} late task(s), reminded:"]
                    lines += [task_line(t, names.get(t.id), self._zone) for t in late]
                    key = f"tasks:escalate:{manager}:{userid}:{late[0].id}"
                    await self._send(session, key, manager, lines, at)
                else:
                    log.warning(
                        "late tasks %s of %s: no manager found; set sop.tasks.escalation"
                        " (managers, by_department or default)",
                        [t.id for t in late],
                        userid,
                    )
                for task in late:
                    task.escalated_at = at
                    task.escalated_to = manager
                    message = f"escalated to {manager}" if manager else "no manager to escalate to"
                    state.note(task, now, by="followups", text=message)
        return len(tasks)

    async def expire(self) -> int:
        after = self._settings.expire_after
        if after is None:
            return 0
        now = self._clock.now()
        async with self._sessions.begin() as session:
            tasks = await _locked(
                session,
                select(Task).where(Task.state.in_(state.ACTIVE), Task.due_at <= now - after),
            )
            for task in tasks:
                await state.expire(session, task, by="followups", now=now)
                await update_card(session, task, response_code=None, zone=self._zone, now=now)
        return len(tasks)

    async def _late(self, session: AsyncSession, now: datetime, *, lock: bool) -> list[Task]:
        escalation = self._settings.escalation
        # A waiting nudge is expired by its playbook at its escalation time: still late, and
        # still the manager's to hear about.
        just_expired = (Task.state == TaskState.EXPIRED) & (Task.closed_at >= now - RECENT)
        statement = select(Task).where(
            (Task.state == TaskState.OPEN) | just_expired,
            Task.escalated_at.is_(None),
            Task.reminded_at <= now - escalation.grace,
        )
        if lock:
            candidates = await _locked(session, statement)
        else:
            candidates = list((await session.scalars(statement.limit(BATCH))).all())
        return [t for t in candidates if (t.escalate_at or t.due_at + escalation.after) <= now]

    async def _send(
        self, session: AsyncSession, key: str, to: str, lines: list[str], at: datetime
    ) -> None:
        now = self._clock.now()
        stamp = int(now.timestamp())
        await enqueue(
            session,
            key=f"{key}:{stamp}"[:200],
            channel=STAFF_APP,
            recipient=to,
            payload=text(fit(lines)),
            due_at=at,
            now=now,
        )


async def _locked(session: AsyncSession, statement: Select[Task]) -> list[Task]:
    """Up to BATCH tasks, locked and skipped by other processes (PostgreSQL)."""
    found = await session.scalars(
        statement.order_by(Task.due_at, Task.id).limit(BATCH).with_for_update(skip_locked=True)
    )
    return list(found.all())


async def _staff_names(session: AsyncSession, userids: set[str]) -> dict[str, str]:
    rows = await session.execute(
        select(Staff.userid, Staff.name).where(Staff.userid.in_(userids), Staff.name.is_not(None))
    )
    return {userid: name for userid, name in rows.all() if name}
