"""Get-or-create by a unique key, safe when two processors race for the same new row.

``INSERT ... ON CONFLICT DO NOTHING`` then ``SELECT``: on PostgreSQL a concurrent insert of
the same key waits for the other transaction instead of failing the row; SQLite has one
writer anyway. Both dialects spell it the same way through their own ``insert``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Base

T = TypeVar("T", bound=Base)


def dialect_insert(session: AsyncSession, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT (with ``on_conflict_do_*``) for ``model``."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


async def get_or_create(
    session: AsyncSession,
    model: type[T],
    keys: dict[str, Any],
    defaults: dict[str, Any] | None = None,
) -> T:
    """The row of ``model`` with ``keys`` (a unique constraint), inserted if missing."""
    stmt = select(model).filter_by(**keys)
    found = (await session.scalars(stmt)).one_or_none()
    if found is not None:
        return found
    insert = dialect_insert(session, model).values(**keys, **(defaults or {}))
    await session.execute(insert.on_conflict_do_nothing(index_elements=list(keys)))
    return (await session.scalars(stmt)).one()
