"""The sender's statements on the outbox table: recover lapsed leases, claim due rows.

On PostgreSQL several senders claim side by side: ``FOR UPDATE SKIP LOCKED`` gives each one
rows the others are not taking. On SQLite the transaction begins ``IMMEDIATE`` (see
:mod:`store.db`), so one writer at a time claims and the lock is simply not rendered.

Everything here is Core on the outbox table, a statement per kind of change rather than one
per row: the sender claims hundreds of rows a second, and on SQLite these transactions run
on the event loop, so they must stay short.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sop.delivery.channel import OutboxMessage
from store.models import OutboxRow, OutboxState

UNCERTAIN_AFTER_CRASH = (
    "the sender stopped while sending (lease lapsed at {lease}); the platform may or may "
    "not have delivered it. Check with the recipient, then `scrm outbox resend {id}` if not"
)

OUTBOX = OutboxRow.metadata.tables[OutboxRow.__tablename__]
_C = OUTBOX.c
#: One row's new values, by primary key (``b_id``): executemany, one statement per kind.
_BY_ID = update(OUTBOX).where(_C.id == bindparam("b_id"))
_CLAIM_COLUMNS = (
    _C.id,
    _C.idempotency_key,
    _C.channel,
    _C.recipient,
    _C.payload,
    _C.attempts,
    _C.due_at,
    _C.expires_at,
    _C.customer_id,
    _C.last_errcode,
)


async def update_each(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """``UPDATE outbox SET <keys> WHERE id = b_id`` for each dict (all with the same keys)."""
    if rows:
        await session.execute(_BY_ID, list(rows))


async def recover_lapsed(
    session: AsyncSession, now: datetime, resendable: Collection[str]
) -> tuple[list[int], list[int]]:
    """Rows left ``sending`` past their lease: ``(made uncertain, made pending again)``.

    Only channels in ``resendable`` (staff nudges: at-least-once) are sent again; every
    other row, customer-facing or of a channel this sender does not know, becomes uncertain.
    """
    lapsed = (
        await session.execute(
            select(_C.id, _C.channel, _C.lease_until)
            .where(_C.state == OutboxState.SENDING, _C.lease_until < now)
            .with_for_update(skip_locked=True)
        )
    ).all()
    uncertain: list[dict[str, Any]] = []
    again: list[dict[str, Any]] = []
    for row_id, channel, lease in lapsed:
        if channel in resendable:
            again.append(
                {
                    "b_id": row_id,
                    "state": OutboxState.PENDING,
                    "due_at": now,
                    "lease_until": None,
                    "last_error": f"resent: the sender stopped while sending (lease {lease})",
                    "updated_at": now,
                }
            )
        else:
            uncertain.append(
                {
                    "b_id": row_id,
                    "state": OutboxState.UNCERTAIN,
                    "lease_until": None,
                    "last_error": UNCERTAIN_AFTER_CRASH.format(lease=lease, id=row_id),
                    "updated_at": now,
                }
            )
    await update_each(session, again)
    await update_each(session, uncertain)
    return [r["b_id"] for r in uncertain], [r["b_id"] for r in again]


async def claim_due(
    session: AsyncSession, now: datetime, channels: Collection[str], limit: int
) -> list[OutboxMessage]:
    """Lock up to ``limit`` pending rows of ``channels`` that are due, oldest due first.

    The messages carry the attempts made so far; :func:`mark_sending` counts the next one.
    """
    query = (
        select(*_CLAIM_COLUMNS)
        .where(
            _C.state == OutboxState.PENDING,
            _C.due_at <= now,
            _C.channel.in_(list(channels)),
        )
        .order_by(_C.due_at, _C.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [
        OutboxMessage(
            id=row_id,
            key=key,
            channel=channel,
            recipient=recipient,
            payload=payload,
            attempts=attempts,
            due_at=due_at,
            expires_at=expires_at,
            customer_id=customer_id,
            last_errcode=last_errcode,
        )
        for (
            row_id,
            key,
            channel,
            recipient,
            payload,
            attempts,
            due_at,
            expires_at,
            customer_id,
            last_errcode,
        ) in (await session.execute(query)).all()
    ]


async def mark_sending(
    session: AsyncSession, ids: Sequence[int], *, now: datetime, lease_until: datetime
) -> None:
    """The claimed rows ``ids`` become ``sending`` under a lease, one more attempt each."""
    if ids:
        await session.execute(
            update(OUTBOX)
            .where(_C.id.in_(list(ids)))
            .values(
                state=OutboxState.SENDING,
                lease_until=lease_until,
                attempts=_C.attempts + 1,
                updated_at=now,
            )
        )
