"""The sender's statements on the outbox table: recover lapsed leases, claim due rows.

On PostgreSQL several senders claim side by side: ``FOR UPDATE SKIP LOCKED`` gives each one
rows the others are not taking. On SQLite the transaction begins ``IMMEDIATE`` (see
:mod:`store.db`), so one writer at a time claims and the lock is simply not rendered.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sop.delivery.channel import OutboxMessage
from store.models import OutboxRow, OutboxState

UNCERTAIN_AFTER_CRASH = (
    "the sender stopped while sending (lease lapsed at {lease}); the platform may or may "
    "not have delivered it. Check with the recipient, then `scrm outbox resend {id}` if not"
)


async def recover_lapsed(
    session: AsyncSession, now: datetime, resendable: Collection[str]
) -> tuple[list[int], list[int]]:
    """Rows left ``sending`` past their lease: ``(made uncertain, made pending again)``.

    Only channels in ``resendable`` (staff nudges: at-least-once) are sent again; every
    other row, customer-facing or of a channel this sender does not know, becomes uncertain.
    """
    lapsed = (
        await session.execute(
            select(OutboxRow.id, OutboxRow.channel, OutboxRow.lease_until)
            .where(OutboxRow.state == OutboxState.SENDING, OutboxRow.lease_until < now)
            .with_for_update(skip_locked=True)
        )
    ).all()
    uncertain, again = [], []
    for row_id, channel, lease in lapsed:
        if channel in resendable:
            again.append(row_id)
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(
                    state=OutboxState.PENDING,
                    due_at=now,
                    lease_until=None,
                    last_error=f"resent: the sender stopped while sending (lease {lease})",
                    updated_at=now,
                )
            )
        else:
            uncertain.append(row_id)
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row_id)
                .values(
                    state=OutboxState.UNCERTAIN,
                    lease_until=None,
                    last_error=UNCERTAIN_AFTER_CRASH.format(lease=lease, id=row_id),
                    updated_at=now,
                )
            )
    return uncertain, again


async def claim_due(
    session: AsyncSession, now: datetime, channels: Collection[str], limit: int
) -> Sequence[OutboxRow]:
    """Lock up to ``limit`` pending rows of ``channels`` that are due, oldest due first."""
    query = (
        select(OutboxRow)
        .where(
            OutboxRow.state == OutboxState.PENDING,
            OutboxRow.due_at <= now,
            OutboxRow.channel.in_(list(channels)),
        )
        .order_by(OutboxRow.due_at, OutboxRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


def to_message(row: OutboxRow) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        key=row.idempotency_key,
        channel=row.channel,
        recipient=row.recipient,
        payload=row.payload,
        attempts=row.attempts,
        due_at=row.due_at,
        expires_at=row.expires_at,
        customer_id=row.customer_id,
        last_errcode=row.last_errcode,
    )
