"""Set-based inserts that ignore rows already there: the fan-out's only way of writing.

One multi-row ``INSERT ... VALUES ... ON CONFLICT DO NOTHING`` per table and batch (SQLite
and PostgreSQL spell it alike through SQLAlchemy's dialect inserts): a batch of 500
recipients costs a few statements, not 500 round trips, and a batch written twice (a crash
between commit and cursor is impossible, but two processes on one run are not) adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute

from store.models import OutboxRow, OutboxState

#: Rows per statement: far below SQLite's 32,766 and PostgreSQL's 32,767 bound parameters.
CHUNK = 1000


async def insert_ignoring(
    session: AsyncSession,
    model: type[DeclarativeBase],
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str],
    returning: QueryableAttribute[Any] | None = None,
) -> list[Any]:
    """Insert ``rows``, skipping those that clash on the unique ``conflict`` columns; the
    ``returning`` values of the rows actually inserted (empty without ``returning``)."""
    insert = (
        postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    inserted: list[Any] = []
    for start in range(0, len(rows), CHUNK):
        chunk = list(rows[start : start + CHUNK])
        statement = insert(model).values(chunk).on_conflict_do_nothing(index_elements=conflict)
        if returning is None:
            await session.execute(statement)
        else:
            result = await session.execute(statement.returning(returning))
            inserted.extend(result.scalars().all())
    return inserted


def outbox_values(
    *,
    key: str,
    channel: str,
    recipient: str,
    payload: dict[str, Any],
    due_at: datetime,
    now: datetime,
    customer_id: int | None = None,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """One outbox row as :func:`sop.delivery.outbox.enqueue` would write it."""
    return {
        "idempotency_key": key,
        "channel": channel,
        "recipient": recipient,
        "payload": payload,
        "due_at": due_at,
        "expires_at": expires_at,
        "state": OutboxState.PENDING,
        "attempts": 0,
        "platform_ids": {},
        "customer_id": customer_id,
        "created_at": now,
        "updated_at": now,
    }


async def insert_outbox(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert outbox rows, ignoring keys already there; how many were new."""
    new = await insert_ignoring(
        session, OutboxRow, rows, conflict=["idempotency_key"], returning=OutboxRow.id
    )
    return len(new)
