"""Putting messages in the outbox, inside the caller's transaction.

Whoever decides that a message must go out (a handler, the engine, a campaign) calls
:func:`enqueue` in the same transaction as the change that causes it: both commit or
neither does. The idempotency key makes a repeated decision harmless (a reprocessed callback,
a retried engine step): the second insert does nothing and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from store.models import OutboxRow, OutboxState

MAX_KEY_LENGTH = 200


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    channel: str,
    recipient: str,
    payload: Mapping[str, Any],
    due_at: datetime,
    customer_id: int | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Add one outbox row unless a row with ``key`` exists; True when it was new.

    ``due_at`` is the earliest time to send; ``expires_at`` (optional) the end of the window
    after which the row is recorded ``expired`` instead of being sent. ``now`` stamps
    ``created_at`` (default ``due_at``: pass the clock's time when they differ).
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"outbox idempotency key must be 1-{MAX_KEY_LENGTH} characters, got {key!r}"
        )
    if due_at.tzinfo is None or (expires_at is not None and expires_at.tzinfo is None):
        raise ValueError(f"outbox row {key!r}: due_at and expires_at must be timezone-aware")
    stamp = now or due_at
    values: dict[str, Any] = {
        "idempotency_key": key,
        "channel": channel,
        "recipient": recipient,
        "payload": dict(payload),
        "due_at": due_at,
        "expires_at": expires_at,
        "state": OutboxState.PENDING,
        "attempts": 0,
        "platform_ids": {},
        "customer_id": customer_id,
        "created_at": stamp,
        "updated_at": stamp,
    }
    # On the transaction's connection: through the session, an INSERT of a mapped class takes
    # the ORM's bulk-insert path, about three times the CPU of the statement itself.
    connection = await session.connection()
    statement = _INSERTS["postgresql" if connection.dialect.name == "postgresql" else "sqlite"]
    inserted = (await connection.execute(statement, values)).scalar_one_or_none()
    return inserted is not None


#: Built once (the engine enqueues on every send step): INSERT ... ON CONFLICT
#: (idempotency_key) DO NOTHING RETURNING id, values bound per call.
_INSERTS: dict[str, ReturningInsert[tuple[int]]] = {
    "postgresql": postgresql_insert(OutboxRow)
    .on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(OutboxRow.id),
    "sqlite": sqlite_insert(OutboxRow)
    .on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(OutboxRow.id),
}
