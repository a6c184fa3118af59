"""Get-or-create by a unique key, safe when two processors race for the same new row.

``SELECT``, then ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (and ``SELECT`` again only
when the insert lost a race): on PostgreSQL a concurrent insert of
the same key waits for the other transaction instead of failing the row; SQLite has one
writer anyway. Both dialects spell it the same way through their own ``insert``.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Base

T = TypeVar("T", bound=Base)


def dialect_insert(
    session: AsyncSession, model: type[Base] | Table
) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT (with ``on_conflict_do_*``) for ``model``.

    Given a mapped class the statement is ORM-enabled (it can return ORM objects, and
    autoflushes); given its ``Table`` it is plain Core, which costs far less per execution.
    """
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
    if None in keys.values():  # ``= :key`` never matches NULL; filter_by says IS NULL
        stmt, params = select(model).filter_by(**keys), {}
    else:
        stmt, params = _lookup(model, tuple(keys)), keys
    found = (await session.scalars(stmt, params)).one_or_none()
    if found is not None:
        return found
    insert = dialect_insert(session, model).values(**keys, **(defaults or {}))
    # RETURNING hands back the new row as an ORM object, saving the SELECT after a
    # successful insert; a conflict (another processor won the race) returns nothing.
    returning = insert.on_conflict_do_nothing(index_elements=list(keys)).returning(model)
    created = (await session.scalars(returning)).one_or_none()
    if created is not None:
        return created
    return (await session.scalars(stmt, params)).one()


_LOOKUPS: dict[tuple[type[Base], tuple[str, ...]], Select[Any]] = {}


def _lookup(model: type[T], names: tuple[str, ...]) -> Select[T]:
    """``SELECT model WHERE name = :name ...``, built once per model and key names.

    Building and cache-keying a statement costs more than running it on SQLite.
    """
    stmt = _LOOKUPS.get((model, names))
    if stmt is None:
        stmt = select(model).where(*(getattr(model, name) == bindparam(name) for name in names))
        _LOOKUPS[(model, names)] = stmt
    return cast("Select[T]", stmt)
