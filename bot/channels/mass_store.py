"""The statements behind mass-message results: a job when a message is accepted, and settling
each recipient once its fate is known, with its entry on the customer's (or group's) timeline.

Shared by the channel (:mod:`bot.channels.mass_message`), which records the job right after
the platform accepted the message, and the collector (:mod:`bot.channels.mass_results`),
which settles recipients as the result APIs report them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    Customer,
    CustomerGroup,
    Direction,
    Interaction,
    MassJob,
    MassRecipient,
    MassStatus,
)

_LOOKUP_CHUNK = 500
JOBS = MassJob.metadata.tables[MassJob.__tablename__]
RECIPIENTS = MassRecipient.metadata.tables[MassRecipient.__tablename__]
TIMELINE = Interaction.metadata.tables[Interaction.__tablename__]
_R = RECIPIENTS.c
_SET_STATUS = update(RECIPIENTS).where(_R.id == bindparam("b_id"))

_WHY = {
    MassStatus.SENT: "sent by {sender}",
    MassStatus.NOT_A_CONTACT: "not delivered: no longer a contact of {sender}",
    MassStatus.LIMIT_REACHED: "not delivered: already received a mass message within the"
    " platform's limit (one a day)",
    MassStatus.NOT_CONFIRMED: "not sent: {sender} did not send it before the task ended",
    MassStatus.FAILED: "outcome unknown: {error}",
    MassStatus.WITHDRAWN: "withdrawn: the campaign was cancelled before {sender} sent it",
}


@dataclass(frozen=True)
class Accepted:
    """What the channel knows once ``add_msg_template`` answered."""

    outbox_id: int
    msgid: str
    sender: str
    chat_type: str  # single | group
    recipients: Sequence[str]
    fail_list: Sequence[str]
    summary: str
    customer_id: int | None = None  # the outbox row's customer, for its one recipient
    single_recipient: str | None = None


@dataclass(frozen=True)
class Fate:
    status: MassStatus
    send_time: datetime | None = None


async def record_accepted(
    session: AsyncSession,
    accepted: Accepted,
    *,
    now: datetime,
    first_poll_at: datetime,
    withdraw: bool = False,
) -> int:
    """The job and its recipients (pending, or not a contact when in ``fail_list``); its id.

    A job whose every recipient failed already is finished at once. ``withdraw``: its
    campaign run was cancelled while it was being sent; the collector withdraws it at once.
    """
    failed = set(accepted.fail_list)
    names = list(dict.fromkeys([*accepted.recipients, *accepted.fail_list]))
    pending = [r for r in names if r not in failed]
    job_id = (
        await session.execute(
            insert(JOBS)
            .values(
                outbox_id=accepted.outbox_id,
                msgid=accepted.msgid,
                sender=accepted.sender,
                chat_type=accepted.chat_type,
                summary=accepted.summary,
                accepted_at=now,
                next_poll_at=now if withdraw else first_poll_at,
                withdraw_requested_at=now if withdraw else None,
                polls=0,
                reminders=0,
                finished_at=now if names and not pending else None,
                updated_at=now,
            )
            .returning(JOBS.c.id)
        )
    ).scalar_one()
    owners = await _owners(session, accepted.chat_type, names)
    if accepted.customer_id is not None and accepted.single_recipient in names:
        owners[accepted.single_recipient] = (accepted.customer_id, None)
    job = _JobRef(job_id, accepted.outbox_id, accepted.msgid, accepted.sender, accepted.summary)
    fates = {
        r: Fate(MassStatus.NOT_A_CONTACT if r in failed else MassStatus.PENDING) for r in names
    }
    await _insert_recipients(session, job, fates, owners, now)
    return int(job_id)


@dataclass(frozen=True)
class _JobRef:
    id: int
    outbox_id: int
    msgid: str
    sender: str
    summary: str


async def settle(
    session: AsyncSession,
    job: MassJob,
    fates: Mapping[str, Fate],
    *,
    now: datetime,
    error: str = "",
) -> dict[MassStatus, int]:
    """Give pending recipients of ``job`` their final fate; recipients the platform reported
    that the job did not know (groups the staff member picked) are added. Counts by status."""
    ref = _JobRef(job.id, job.outbox_id, job.msgid, job.sender, job.summary)
    rows = (
        await session.execute(
            select(_R.id, _R.recipient, _R.status, _R.customer_id, _R.group_id)
            .where(_R.job_id == job.id)
            .with_for_update()
        )
    ).all()
    known = {row.recipient for row in rows}
    counts: dict[MassStatus, int] = {}
    changes: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    for row in rows:
        fate = fates.get(row.recipient)
        if row.status != MassStatus.PENDING or fate is None or fate.status is MassStatus.PENDING:
            continue
        changes.append(
            {"b_id": row.id, "status": fate.status, "send_time": fate.send_time, "updated_at": now}
        )
        counts[fate.status] = counts.get(fate.status, 0) + 1
        if row.customer_id is not None or row.group_id is not None:
            owner = (row.customer_id, row.group_id)
            timeline.append(_entry(ref, row.recipient, fate, owner, now=now, error=error))
    if changes:
        await session.execute(_SET_STATUS, changes)
    if timeline:
        await session.execute(insert(TIMELINE), timeline)
    new = {r: f for r, f in fates.items() if r not in known}
    if new:
        owners = await _owners(session, job.chat_type, list(new))
        await _insert_recipients(session, ref, new, owners, now, error=error)
        for fate in new.values():
            counts[fate.status] = counts.get(fate.status, 0) + 1
    return counts


async def pending_recipients(session: AsyncSession, job_id: int) -> list[str]:
    query = select(_R.recipient).where(_R.job_id == job_id, _R.status == MassStatus.PENDING)
    return list((await session.scalars(query)).all())


async def _insert_recipients(
    session: AsyncSession,
    job: _JobRef,
    fates: Mapping[str, Fate],
    owners: Mapping[str, tuple[int | None, int | None]],
    now: datetime,
    *,
    error: str = "",
) -> None:
    if not fates:
        return
    rows = []
    timeline = []
    for recipient, fate in fates.items():
        customer_id, group_id = owners.get(recipient, (None, None))
        rows.append(
            {
                "job_id": job.id,
                "outbox_id": job.outbox_id,
                "msgid": job.msgid,
                "sender": job.sender,
                "recipient": recipient,
                "customer_id": customer_id,
                "group_id": group_id,
                "status": fate.status,
                "send_time": fate.send_time,
                "created_at": now,
                "updated_at": now,
            }
        )
        if fate.status is not MassStatus.PENDING and (customer_id or group_id):
            timeline.append(
                _entry(job, recipient, fate, (customer_id, group_id), now=now, error=error)
            )
    await session.execute(insert(RECIPIENTS), rows)
    if timeline:
        await session.execute(insert(TIMELINE), timeline)


async def _owners(
    session: AsyncSession, chat_type: str, recipients: Iterable[str]
) -> dict[str, tuple[int | None, int | None]]:
    """Customer ids (or group ids, for groups) of the recipients the store knows."""
    names = list(recipients)
    found: dict[str, tuple[int | None, int | None]] = {}
    for start in range(0, len(names), _LOOKUP_CHUNK):
        chunk = names[start : start + _LOOKUP_CHUNK]
        if chat_type == "group":
            groups = select(CustomerGroup.chat_id, CustomerGroup.id).where(
                CustomerGroup.chat_id.in_(chunk)
            )
            found.update({cid: (None, gid) for cid, gid in await session.execute(groups)})
        else:
            customers = select(Customer.external_userid, Customer.id).where(
                Customer.external_userid.in_(chunk)
            )
            found.update({str(e): (cid, None) for e, cid in await session.execute(customers)})
    return found


def _entry(
    job: _JobRef,
    recipient: str,
    fate: Fate,
    owner: tuple[int | None, int | None],
    *,
    now: datetime,
    error: str,
) -> dict[str, Any]:
    why = _WHY[fate.status].format(sender=job.sender, error=error or "results unreadable")
    return {
        "customer_id": owner[0],
        "group_id": owner[1],
        "staff_userid": job.sender,
        "direction": Direction.OUTBOUND if fate.status is MassStatus.SENT else Direction.EVENT,
        "kind": f"mass:{fate.status.value}",
        "summary": f"mass message {why}: {job.summary}",
        "data": {
            "outbox_id": job.outbox_id,
            "msgid": job.msgid,
            "recipient": recipient,
            "status": fate.status.value,
            "send_time": fate.send_time.isoformat() if fate.send_time else None,
        },
        "source": "mass_results",
        "inbox_id": None,
        "seq": 0,
        "occurred_at": fate.send_time or now,
        "recorded_at": now,
    }
