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

from sqlalchemy import ColumnElement, Update, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
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


#: The claim, built once: a statement object caches its compiled form and cache key.
_CLAIM = (
    select(*_CLAIM_COLUMNS)
    .where(
        _C.state == OutboxState.PENDING,
        _C.due_at <= bindparam("now"),
        _C.channel.in_(bindparam("channels", expanding=True)),
    )
    .order_by(_C.due_at, _C.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


def ids_in(name: str, *, postgres: bool) -> ColumnElement[bool]:
    """``id`` among the ids bound as ``name``: on PostgreSQL ``= ANY(array)``, one statement
    text for any number of ids (asyncpg prepares each distinct text once per connection);
    elsewhere an expanding ``IN``."""
    if postgres:
        return _C.id == any_(bindparam(name, type_=ARRAY(_C.id.type)))
    return _C.id.in_(bindparam(name, expanding=True))


def _mark_sending(postgres: bool) -> Update:
    return (
        update(OUTBOX)
        .where(ids_in("ids", postgres=postgres))
        .values(
            state=OutboxState.SENDING,
            lease_until=bindparam("lease_until"),
            attempts=_C.attempts + 1,
            updated_at=bindparam("now"),
        )
    )


_MARK_SENDING = {postgres: _mark_sending(postgres) for postgres in (False, True)}


#: A claimed row that was not sent, put back if it is still ours: pending, due as it was, the
#: claim's attempt not counted.
_RELEASE = (
    update(OUTBOX)
    .where(
        _C.id == bindparam("b_id"),
        _C.state == OutboxState.SENDING,
        _C.attempts == bindparam("b_attempts"),
    )
    .values(
        state=OutboxState.PENDING,
        lease_until=None,
        attempts=_C.attempts - 1,
        updated_at=bindparam("b_now"),
    )
)


async def release(session: AsyncSession, messages: Sequence[OutboxMessage], now: datetime) -> None:
    """Give back claimed messages that were never handed to a channel (a graceful stop), so
    another sender takes them at once rather than after the lease (when a customer's row
    would be marked uncertain although it was never tried)."""
    if messages:
        rows = [{"b_id": m.id, "b_attempts": m.attempts, "b_now": now} for m in messages]
        await session.execute(_RELEASE, rows)


async def claim_due(
    session: AsyncSession, now: datetime, channels: Collection[str], limit: int
) -> list[OutboxMessage]:
    """Lock up to ``limit`` pending rows of ``channels`` that are due, oldest due first.

    Each message already counts the attempt about to be made (what :func:`mark_sending`
    writes), so the sender builds it once.
    """
    found = await session.execute(_CLAIM, {"now": now, "channels": list(channels), "limit": limit})
    return [
        OutboxMessage(
            row_id,
            key,
            channel,
            recipient,
            payload,
            attempts + 1,
            due_at,
            expires_at,
            customer_id,
            last_errcode,
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
        ) in found.all()
    ]


async def mark_sending(
    session: AsyncSession, ids: Sequence[int], *, now: datetime, lease_until: datetime
) -> None:
    """The claimed rows ``ids`` become ``sending`` under a lease, one more attempt each."""
    if ids:
        statement = _MARK_SENDING[session.get_bind().dialect.name == "postgresql"]
        await session.execute(
            statement, {"ids": list(ids), "now": now, "lease_until": lease_until}
        )
