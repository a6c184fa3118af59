"""Recording a transfer job: the plan becomes a job with one item per customer and group,
and the member's open tasks and enrollments move to the successor, in one transaction.

Moving the work at once (not when the platform confirms each customer) is deliberate: the
successor is answerable from now on, including for a customer whose transfer fails, who
stays visible with the reason for the successor or an operator to follow up. The platform
calls themselves (``transfer_customer``, ``groupchat/transfer``) are made later by the
poller (``bot.transfers``), which works the items through to a final state.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.delivery.messages import STAFF_APP, text
from sop.delivery.outbox import enqueue
from sop.staff import audit
from sop.staff.handoff import Handoff, hand_off
from sop.staff.plan import TransferPlan
from sop.staff.settings import MESSAGE_LIMIT
from store.models import (
    TransferItem,
    TransferItemKind,
    TransferItemState,
    TransferJob,
    TransferJobState,
    TransferMode,
)

_NOTICE_TASKS = 10


async def record_transfer(
    session: AsyncSession,
    plan: TransferPlan,
    *,
    key: str,
    actor: str,
    reason: str = "",
    message: str | None = None,
    notify: bool = True,
    now: datetime,
) -> TransferJob:
    """Record ``plan`` as a job (or return the job already recorded under ``key``)."""
    existing = await session.scalar(select(TransferJob).where(TransferJob.key == key))
    if existing is not None:
        return existing
    if message is not None and len(message) > MESSAGE_LIMIT:
        raise ValueError(
            f"transfer {key!r}: the handover message has {len(message)} characters, the"
            f" platform takes at most {MESSAGE_LIMIT}; shorten staff.handover_message"
        )
    has_items = bool(plan.customers or plan.groups)
    job = TransferJob(
        key=key,
        mode=plan.mode,
        handover_userid=plan.handover_userid,
        takeover_userid=plan.takeover_userid,
        actor=actor,
        reason=reason,
        message=message if plan.mode is TransferMode.ONJOB else None,
        state=TransferJobState.RUNNING if has_items else TransferJobState.DONE,
        next_check_at=now,
        attempts=0,
        counts={} if has_items else {"transferred": 0, "failed": 0},
        created_at=now,
        updated_at=now,
        finished_at=None if has_items else now,
    )
    session.add(job)
    await session.flush()
    for customer in plan.customers:
        session.add(
            TransferItem(
                job_id=job.id,
                kind=TransferItemKind.CUSTOMER,
                subject=customer.external_userid,
                customer_id=customer.customer_id,
                state=TransferItemState.PENDING,
                updated_at=now,
            )
        )
    for group in plan.groups:
        session.add(
            TransferItem(
                job_id=job.id,
                kind=TransferItemKind.GROUP,
                subject=group.chat_id,
                group_id=group.group_id,
                state=TransferItemState.PENDING,
                updated_at=now,
            )
        )
    audit.record(
        session,
        at=now,
        actor=actor,
        action="transfer_planned",
        subject=f"staff:{plan.handover_userid}",
        detail={
            "job": job.id,
            "mode": plan.mode.value,
            "to": plan.takeover_userid,
            "reason": reason,
            **plan.counts(),
            "customers_list": [c.external_userid for c in plan.customers],
            "groups_list": [g.chat_id for g in plan.groups],
        },
    )
    handoff = await hand_off(
        session,
        job_id=job.id,
        takeover_userid=plan.takeover_userid,
        tasks=plan.tasks,
        enrollments=plan.enrollments,
        actor=actor,
        now=now,
    )
    if notify:
        await _notify(session, job, plan, handoff, now)
    return job


async def _notify(
    session: AsyncSession, job: TransferJob, plan: TransferPlan, handoff: Handoff, now: datetime
) -> None:
    """Tell the successor what they inherit; the customers follow as the platform confirms."""
    counts = plan.counts()
    lines = [
        f"You are taking over from {plan.handover_userid} (transfer {job.id}):"
        f" {counts['customers']} customers, {counts['groups']} groups,"
        f" {len(handoff.tasks)} open tasks, {len(handoff.enrollments)} running playbooks.",
    ]
    for task in list(handoff.tasks.values())[:_NOTICE_TASKS]:
        lines.append(f"- task {task.id}: {task.title} (due {task.due_at:%Y-%m-%d %H:%M} UTC)")
    if len(handoff.tasks) > _NOTICE_TASKS:
        lines.append(f"... and {len(handoff.tasks) - _NOTICE_TASKS} more: reply 'tasks'")
    await enqueue(
        session,
        key=f"transfer:{job.id}:notice",
        channel=STAFF_APP,
        recipient=plan.takeover_userid,
        payload=text("\n".join(lines)),
        due_at=now,
        now=now,
    )
