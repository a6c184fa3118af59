"""``nudge``: a staff task with a rendered script, a due time and an escalation time.

The task is what a personalised follow-up to a WeCom customer really is (the platform does
not let an app write to a customer): a row in ``tasks`` and a button card to the staff member
(Done / Snooze 1 h / Not relevant, keys ``task:<id>:done|snooze|skip``). Without ``wait`` the
enrollment goes on at once; with ``wait: true`` it sleeps (``Waiting.TASK``) until the task
ends (:func:`task_finished`, called by the task system) or a ``task_timeout`` row at the due
time (plus ``escalate_after``) finds it still open (:func:`task_timeout`: ``on_expired``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.delivery.messages import STAFF_APP, task_card
from sop.engine import lifecycle
from sop.engine.steps.base import StepContext, StepResult
from store.models import (
    AgendaKind,
    Enrollment,
    EnrollmentState,
    Task,
    TaskState,
    Waiting,
)


async def nudge(run: StepContext) -> StepResult:
    action = run.step.nudge
    assert action is not None
    staff = await run.owner() if action.staff == "owner" else action.staff
    if staff is None:
        reason = "the customer has no owning staff member to nudge (staff: owner)"
        return StepResult("no_staff", {"reason": reason})
    script = await run.render(action.script, staff_userid=staff)
    customer = await run.customer()
    who = (customer.name or customer.external_userid or f"#{customer.id}") if customer else ""
    due_at = run.now + action.due
    escalate_at = due_at + action.escalate_after if action.escalate_after else None
    task = Task(
        key=run.key,
        staff_userid=staff,
        customer_id=run.enrollment.customer_id,
        group_id=run.enrollment.group_id,
        enrollment_id=run.enrollment.id,
        step_index=run.index,
        origin=run.origin,
        title=action.title[:200],
        script=script,
        due_at=due_at,
        escalate_at=escalate_at,
        state=TaskState.OPEN,
        history=[{"at": run.now.isoformat(), "state": TaskState.OPEN.value, "by": run.origin}],
        created_at=run.now,
        updated_at=run.now,
    )
    run.session.add(task)
    await run.session.flush()
    card_key = f"task:{task.id}:card"
    card = task_card(task.id, action.title, f"{who}: {script}" if who else script)
    run.enqueue(
        key=card_key,
        channel=STAFF_APP,
        recipient=staff,
        payload=card,
        customer_id=run.enrollment.customer_id,
    )
    detail = {
        "task_id": task.id,
        "staff": staff,
        "script": script,
        "due_at": due_at.isoformat(),
        "outbox_key": card_key,
    }
    if not action.wait:
        return StepResult("done", detail)
    run.enrollment.waiting = Waiting.TASK
    timeout_at = escalate_at or due_at
    lifecycle.schedule_taken(
        run.enrollment,
        step_index=run.index,
        due_at=timeout_at,
        kind=AgendaKind.TASK_TIMEOUT,
    )
    return StepResult("waiting", detail | {"timeout_at": timeout_at.isoformat()}, wait=True)


async def task_timeout(run: StepContext) -> StepResult:
    """Decide a waiting nudge: the task ended (``on_done`` / ``on_skipped``), was snoozed
    or moved (wait on, until its new time), or is still open at its time (``expired``:
    ``on_expired``)."""
    action = run.step.nudge
    assert action is not None
    task = (
        await run.session.execute(
            select(Task)
            .where(Task.enrollment_id == run.enrollment.id, Task.step_index == run.index)
            .order_by(Task.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if task is None:
        return StepResult("expired", {"reason": "the task is gone"}, goto=action.on_expired)
    detail: dict[str, object] = {"task_id": task.id, "task_state": task.state.value}
    if task.state == TaskState.DONE:
        run.enrollment.waiting = Waiting.NONE
        return StepResult("task_done", detail, goto=action.on_done)
    if task.state in (TaskState.SKIPPED, TaskState.REASSIGNED):
        run.enrollment.waiting = Waiting.NONE
        return StepResult("task_skipped", detail, goto=action.on_skipped)
    later = task.escalate_at or task.due_at
    if task.state != TaskState.EXPIRED and later > run.now:
        lifecycle.schedule_taken(
            run.enrollment,
            step_index=run.index,
            due_at=later,
            kind=AgendaKind.TASK_TIMEOUT,
        )
        return StepResult("waiting", detail | {"timeout_at": later.isoformat()}, wait=True)
    run.enrollment.waiting = Waiting.NONE
    if task.state != TaskState.EXPIRED:
        _close(task, TaskState.EXPIRED, run.now, by=run.origin)
    return StepResult("expired", detail, goto=action.on_expired)


TaskOutcome = Literal["done", "skipped"]
_ENDED = {"done": TaskState.DONE, "skipped": TaskState.SKIPPED}


async def task_finished(
    session: AsyncSession, task: Task, outcome: TaskOutcome, *, now: datetime
) -> bool:
    """Wake the enrollment waiting on ``task``; False when none waits on it (a nudge without
    ``wait``, one already timed out, an ended enrollment).

    Called by the task system in the transaction that closes the task. The waiting
    ``task_timeout`` row is replaced by one due now, which the engine runs on its next tick
    and which branches on the task's state (``on_done`` / ``on_skipped``): the branching
    lives in one place, with the enrollment's own playbook version.
    """
    if task.enrollment_id is None or task.step_index is None:
        return False
    if task.state in (TaskState.OPEN, TaskState.SNOOZED):
        _close(task, _ENDED[outcome], now, by="task_finished")
    enrollment = (
        await session.execute(
            select(Enrollment).where(Enrollment.id == task.enrollment_id).with_for_update()
        )
    ).scalar_one_or_none()
    if (
        enrollment is None
        or enrollment.state != EnrollmentState.ACTIVE
        or enrollment.waiting != Waiting.TASK
    ):
        return False
    await lifecycle.cancel_pending(session, enrollment.id, now=now, kind=AgendaKind.TASK_TIMEOUT)
    lifecycle.schedule(
        session,
        enrollment,
        step_index=task.step_index,
        due_at=now,
        now=now,
        kind=AgendaKind.TASK_TIMEOUT,
    )
    return True


def _close(task: Task, state: TaskState, now: datetime, *, by: str) -> None:
    task.state = state
    task.closed_at = now
    task.updated_at = now
    task.history = [*task.history, {"at": now.isoformat(), "state": state.value, "by": by}]
