"""What a platform outcome does to the model: the follow moves, or the failure stays visible.

A transferred customer: the handover member's relationship ends (``removed``, with no
``removed_by``: nobody deleted anyone) and the successor's becomes active. A failed one:
the handover member's relationship stays as it is and carries the reason in
``transfer_fail_reason`` (the platform's words: ``customer_refused``,
``customer_limit_exceed``, ...), where ``scrm customers`` and the staff report see it. Either
way the customer's timeline and the audit log get an entry, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.staff import audit
from store.models import (
    ITEM_FINAL,
    CustomerGroup,
    CustomerStaff,
    Direction,
    FollowState,
    Interaction,
    TransferItem,
    TransferItemState,
    TransferJob,
    TransferJobState,
)

ACTOR = "poller"
REASON_LIMIT = 64


def _source(job: TransferJob) -> str:
    return f"transfer:{job.id}"


async def _follow(session: AsyncSession, customer_id: int, userid: str) -> CustomerStaff:
    row = await session.scalar(
        select(CustomerStaff).where(
            CustomerStaff.customer_id == customer_id, CustomerStaff.staff_userid == userid
        )
    )
    if row is None:
        row = CustomerStaff(customer_id=customer_id, staff_userid=userid)
        session.add(row)
    return row


def _timeline(
    session: AsyncSession,
    job: TransferJob,
    item: TransferItem,
    *,
    kind: str,
    summary: str,
    data: dict[str, Any],
    at: datetime,
    now: datetime,
) -> None:
    session.add(
        Interaction(
            customer_id=item.customer_id,
            group_id=item.group_id,
            staff_userid=job.takeover_userid,
            direction=Direction.EVENT,
            kind=kind,
            summary=summary,
            data={"job": job.id, "from": job.handover_userid, "to": job.takeover_userid, **data},
            source=_source(job),
            seq=0,
            occurred_at=at,
            recorded_at=now,
        )
    )


async def customer_transferred(
    session: AsyncSession,
    job: TransferJob,
    item: TransferItem,
    *,
    takeover_at: datetime | None,
    now: datetime,
) -> None:
    at = takeover_at or now
    item.state, item.status, item.takeover_at = TransferItemState.TRANSFERRED, 1, at
    item.reason, item.finished_at, item.updated_at = None, now, now
    if item.customer_id is not None:
        old = await _follow(session, item.customer_id, job.handover_userid)
        old.state, old.removed_at, old.transfer_fail_reason = FollowState.REMOVED, at, None
        new = await _follow(session, item.customer_id, job.takeover_userid)
        new.state, new.removed_at, new.removed_by = FollowState.ACTIVE, None, None
        new.transfer_fail_reason = None
        new.added_at = new.added_at or at
        _timeline(
            session,
            job,
            item,
            kind="customer_transferred",
            summary=f"{job.takeover_userid} took the customer over from {job.handover_userid}",
            data={"mode": job.mode.value},
            at=at,
            now=now,
        )
    audit.record(
        session,
        at=now,
        actor=ACTOR,
        action="customer_transferred",
        subject=f"customer:{item.subject}",
        detail={"job": job.id, "to": job.takeover_userid, "takeover_at": at.isoformat()},
    )


async def customer_failed(
    session: AsyncSession,
    job: TransferJob,
    item: TransferItem,
    *,
    reason: str,
    status: int | None = None,
    errcode: int | None = None,
    detail: str = "",
    now: datetime,
) -> None:
    item.state, item.status, item.errcode = TransferItemState.FAILED, status, errcode
    item.reason = f"{reason}: {detail}" if detail else reason
    item.finished_at, item.updated_at = now, now
    if item.customer_id is not None:
        old = await _follow(session, item.customer_id, job.handover_userid)
        old.transfer_fail_reason = reason[:REASON_LIMIT]
        _timeline(
            session,
            job,
            item,
            kind="transfer_failed",
            summary=f"transfer to {job.takeover_userid} failed: {reason}",
            data={"reason": reason, "status": status, "errcode": errcode, "detail": detail},
            at=now,
            now=now,
        )
    audit.record(
        session,
        at=now,
        actor=ACTOR,
        action="customer_transfer_failed",
        subject=f"customer:{item.subject}",
        detail={"job": job.id, "to": job.takeover_userid, "reason": item.reason},
    )


async def group_transferred(
    session: AsyncSession, job: TransferJob, item: TransferItem, *, now: datetime
) -> None:
    item.state, item.finished_at, item.updated_at = TransferItemState.TRANSFERRED, now, now
    item.takeover_at = now
    if item.group_id is not None:
        group = await session.get(CustomerGroup, item.group_id)
        if group is not None:
            group.owner_userid = job.takeover_userid
    audit.record(
        session,
        at=now,
        actor=ACTOR,
        action="group_transferred",
        subject=f"group:{item.subject}",
        detail={"job": job.id, "to": job.takeover_userid},
    )


def group_failed(
    session: AsyncSession,
    job: TransferJob,
    item: TransferItem,
    *,
    errcode: int | None,
    reason: str,
    now: datetime,
) -> None:
    item.state, item.errcode, item.reason = TransferItemState.FAILED, errcode, reason
    item.finished_at, item.updated_at = now, now
    audit.record(
        session,
        at=now,
        actor=ACTOR,
        action="group_transfer_failed",
        subject=f"group:{item.subject}",
        detail={"job": job.id, "to": job.takeover_userid, "errcode": errcode, "reason": reason},
    )


async def finish_if_done(session: AsyncSession, job: TransferJob, *, now: datetime) -> bool:
    """Close the job when every item is final; True when it was closed now."""
    items = list(await session.scalars(select(TransferItem).where(TransferItem.job_id == job.id)))
    if any(item.state not in ITEM_FINAL for item in items):
        return False
    counts: dict[str, int] = {"transferred": 0, "failed": 0}
    for item in items:
        counts[item.state.value] = counts.get(item.state.value, 0) + 1
    job.state, job.counts, job.finished_at, job.updated_at = (
        TransferJobState.DONE,
        counts,
        now,
        now,
    )
    audit.record(
        session,
        at=now,
        actor=ACTOR,
        action="transfer_finished",
        subject=f"job:{job.id}",
        detail={"from": job.handover_userid, "to": job.takeover_userid, **counts},
    )
    return True
