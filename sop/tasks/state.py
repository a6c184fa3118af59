"""Task transitions: every change of a task's state, with its history entry, in one place.

Cards, typed commands, follow-ups and operators all change tasks through these functions, in
the caller's transaction, so the rules hold whoever acts: only an open (or snoozed) task can
be done, skipped, snoozed, expired or reassigned; a closed one is left as it is and the
caller is told (:class:`Change` with ``changed=False``). Ending a task wakes the playbook
enrollment that waits on it (:func:`sop.engine.steps.nudge.task_finished`), which then
branches on ``done`` / ``skipped`` / ``expired``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.engine.steps.nudge import task_finished
from store.models import Task, TaskState

#: States a task can still change from.
ACTIVE = frozenset({TaskState.OPEN, TaskState.SNOOZED})
KEY_LIMIT = 200


@dataclass(frozen=True)
class Change:
    """What a transition did: the task, its state before, and whether anything changed."""

    task: Task
    before: TaskState
    changed: bool
    woke: bool = False  # a waiting playbook enrollment was resumed

    @property
    def after(self) -> TaskState:
        return self.task.state


async def task_for_update(session: AsyncSession, task_id: int) -> Task | None:
    """The task, locked for the rest of the transaction (PostgreSQL), or None."""
    statement = select(Task).where(Task.id == task_id).with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


def note(task: Task, now: datetime, *, by: str, text: str) -> None:
    """A history entry that does not change the state (a reminder, an escalation)."""
    _append(task, now, {"state": task.state.value, "by": by, "note": text})


async def done(session: AsyncSession, task: Task, *, by: str, now: datetime) -> Change:
    return await _end(session, task, TaskState.DONE, by=by, now=now)


async def skip(session: AsyncSession, task: Task, *, by: str, now: datetime) -> Change:
    """ "Not relevant": closed without doing it; a waiting playbook takes ``on_skipped``."""
    return await _end(session, task, TaskState.SKIPPED, by=by, now=now)


async def expire(session: AsyncSession, task: Task, *, by: str, now: datetime) -> Change:
    """Nobody acted in time. A waiting playbook is woken and takes ``on_expired`` (its
    ``task_timeout`` decides on the task's state, which is now ``expired``)."""
    return await _end(session, task, TaskState.EXPIRED, by=by, now=now)


def snooze(task: Task, until: datetime, *, by: str, now: datetime) -> Change:
    """Put the task aside until ``until``: its due and escalation times move with it (the gap
    between them kept), so a waiting playbook waits on and no reminder comes meanwhile."""
    before = task.state
    if before not in ACTIVE or until <= now:
        return Change(task, before, changed=False)
    shift = max(until - task.due_at, timedelta(0))
    task.due_at += shift
    if task.escalate_at is not None:
        task.escalate_at += shift
    task.state = TaskState.SNOOZED
    task.snoozed_until = until
    task.reminded_at = None
    _append(
        task,
        now,
        {"state": TaskState.SNOOZED.value, "by": by, "note": f"until {until.isoformat()}"},
    )
    return Change(task, before, changed=True)


def wake(task: Task, *, now: datetime) -> Change:
    """A snooze that ran out: the task is open again (and due: ``due_at`` moved with it)."""
    before = task.state
    if before != TaskState.SNOOZED:
        return Change(task, before, changed=False)
    task.state = TaskState.OPEN
    task.snoozed_until = None
    _append(task, now, {"state": TaskState.OPEN.value, "by": "snooze", "note": "snooze over"})
    return Change(task, before, changed=True)


def successor_task(task: Task, *, key: str, staff_userid: str, by: str, now: datetime) -> Task:
    """The open task that takes over ``task`` for ``staff_userid``: same customer, script,
    times, enrollment and step, with a history that says where it came from."""
    return Task(
        key=key,
        staff_userid=staff_userid,
        customer_id=task.customer_id,
        group_id=task.group_id,
        enrollment_id=task.enrollment_id,
        step_index=task.step_index,
        origin=task.origin,
        title=task.title,
        script=task.script,
        due_at=task.due_at,
        escalate_at=task.escalate_at,
        state=TaskState.OPEN,
        history=[
            {
                "at": now.isoformat(),
                "state": TaskState.OPEN.value,
                "by": by,
                "note": f"reassigned from {task.staff_userid} (task {task.id})",
            }
        ],
        created_at=now,
        updated_at=now,
    )


async def reassign(
    session: AsyncSession, task: Task, to: str, *, by: str, now: datetime
) -> tuple[Change, Task | None]:
    """Hand the task to ``to``: a new open task (same script, times, enrollment and step) and
    the old one closed ``reassigned``.

    A new row rather than a new owner on the old one: the old card's buttons name the old
    id, so a late press by the previous owner cannot close the new owner's task; a waiting
    playbook decides on the newest task of its step, which is the new one.
    """
    before = task.state
    if before not in ACTIVE or to == task.staff_userid:
        return Change(task, before, changed=False), None
    suffix = f":to:{to}:{len(task.history)}"
    new = successor_task(
        task, key=task.key[: KEY_LIMIT - len(suffix)] + suffix, staff_userid=to, by=by, now=now
    )
    session.add(new)
    await session.flush()
    _close(task, TaskState.REASSIGNED, now, by=by, note=f"to {to} (task {new.id})")
    return Change(task, before, changed=True), new


async def _end(
    session: AsyncSession, task: Task, state: TaskState, *, by: str, now: datetime
) -> Change:
    before = task.state
    if before not in ACTIVE:
        return Change(task, before, changed=False)
    _close(task, state, now, by=by)
    # task_finished closes nothing more (the task is closed) and wakes a waiting enrollment;
    # its outcome only matters for tasks it closes itself.
    woke = await task_finished(session, task, "done", now=now)
    return Change(task, before, changed=True, woke=woke)


def _close(task: Task, state: TaskState, now: datetime, *, by: str, note: str = "") -> None:
    task.state = state
    task.closed_at = now
    task.snoozed_until = None
    entry: dict[str, Any] = {"state": state.value, "by": by}
    if note:
        entry["note"] = note
    _append(task, now, entry)


def _append(task: Task, now: datetime, entry: dict[str, Any]) -> None:
    task.updated_at = now
    task.history = [*task.history, {"at": now.isoformat(), **entry}]
