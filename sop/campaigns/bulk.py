"""Set-based inserts that ignore rows already there: the fan-out's only way of writing.

One ``INSERT ... ON CONFLICT DO NOTHING [RETURNING]`` per table, built once, executed with
the batch's rows as parameters: SQLAlchemy's "insertmanyvalues" sends them as multi-row
VALUES pages on both SQLite and PostgreSQL. Compiling a fresh ``.values(rows)`` statement
per batch (one bind parameter object per value) cost ten times the database's own work. A
batch written twice (two processes on one run) adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Executable, Table, insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from store.models import OutboxRow, OutboxState


async def insert_ignoring(
    session: AsyncSession,
    model: type[DeclarativeBase],
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str],
    returning: str | None = None,
) -> list[Any]:
    """Insert ``rows``, skipping those that clash on the unique ``conflict`` columns; the
    ``returning`` column's values of the rows actually inserted (empty without it)."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    statement = _statement(dialect, cast(Table, model.__table__), tuple(conflict), returning)
    connection = await session.connection()
    result = await connection.execute(statement, list(rows))
    return list(result.scalars().all()) if returning is not None else []


async def insert_rows(
    session: AsyncSession, model: type[DeclarativeBase], rows: Sequence[dict[str, Any]]
) -> None:
    """Insert ``rows`` with one executemany (no ORM bookkeeping per row)."""
    if rows:
        connection = await session.connection()
        await connection.execute(insert(cast(Table, model.__table__)), list(rows))


@cache
def _statement(
    dialect: str, table: Table, conflict: tuple[str, ...], returning: str | None
) -> Executable:
    dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = dialect_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    return statement.returning(table.c[returning]) if returning is not None else statement


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
        session, OutboxRow, rows, conflict=["idempotency_key"], returning="id"
    )
    return len(new)
