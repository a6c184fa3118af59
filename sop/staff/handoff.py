"""Moving a member's open tasks and active enrollments to their successor.

Tasks: the old task is closed as ``reassigned`` (its history says to whom and by which
job) and a new open task with the same script, due and escalation times, enrollment and
step is created for the successor. Reassigning in place was the alternative; a new row was
chosen because the old member's card, buttons and reminders all name the old task id (a
late press of "Done" on the leaver's card must not close the successor's task), and
because the report counts each task for the member who held it. A playbook waiting on
the task keeps waiting: the nudge step decides on the newest task of its enrollment and
step, which is the successor's (the old, ``reassigned`` one is never looked at again).

Enrollments keep running; only their ``staff_userid`` changes, so the next nudge or
owner-addressed step goes to the successor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from sop.staff import audit
from sop.tasks.state import successor_task
from store.models import Enrollment, Task, TaskState

KEY_LIMIT = 200


@dataclass
class Handoff:
    """Old task id -> new task, and the enrollments moved."""

    tasks: dict[int, Task] = field(default_factory=dict)
    enrollments: list[int] = field(default_factory=list)


def successor_key(key: str, job_id: int) -> str:
    """The new task's unique key: the old key and the job, shortened by a digest if long."""
    suffix = f":transfer:{job_id}"
    if len(key) + len(suffix) <= KEY_LIMIT:
        return key + suffix
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: KEY_LIMIT - len(suffix) - 17]}~{digest}{suffix}"


async def hand_off(
    session: AsyncSession,
    *,
    job_id: int,
    takeover_userid: str,
    tasks: list[Task],
    enrollments: list[Enrollment],
    actor: str,
    now: datetime,
) -> Handoff:
    """Reassign ``tasks`` and move ``enrollments``; each step is audited."""
    done = Handoff()
    by = f"transfer:{job_id}"
    for task in tasks:
        if task.state not in (TaskState.OPEN, TaskState.SNOOZED):
            continue
        new = successor_task(
            task,
            key=successor_key(task.key, job_id),
            staff_userid=takeover_userid,
            by=by,
            now=now,
        )
        session.add(new)
        await session.flush()
        previous = task.staff_userid
        task.state = TaskState.REASSIGNED
        task.closed_at = now
        task.updated_at = now
        task.history = [
            *task.history,
            {
                "at": now.isoformat(),
                "state": TaskState.REASSIGNED.value,
                "by": by,
                "note": f"to {takeover_userid} (task {new.id})",
            },
        ]
        done.tasks[task.id] = new
        audit.record(
            session,
            at=now,
            actor=actor,
            action="task_reassigned",
            subject=f"task:{task.id}",
            detail={"job": job_id, "from": previous, "to": takeover_userid, "new_task": new.id},
        )
    for enrollment in enrollments:
        previous_staff = enrollment.staff_userid
        enrollment.staff_userid = takeover_userid
        enrollment.updated_at = now
        done.enrollments.append(enrollment.id)
        audit.record(
            session,
            at=now,
            actor=actor,
            action="enrollment_moved",
            subject=f"enrollment:{enrollment.id}",
            detail={
                "job": job_id,
                "playbook": enrollment.playbook,
                "from": previous_staff,
                "to": takeover_userid,
            },
        )
    return done
