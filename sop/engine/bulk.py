"""A Core statement run with many rows through the driver, its parameters built by hand.

Given a list of parameter dictionaries, SQLAlchemy builds each row's parameters through its
generic machinery (per row: a parameter dictionary, one type-processor call per value); for
the engine's writes (thousands of short rows a second) that cost more than the database
took to store them. :class:`Bulk` compiles the statement once per dialect, keeps each
positional parameter's own bind processor, and hands the driver a list of tuples through
``exec_driver_sql``: the same SQL and the same values SQLAlchemy would send, and the same
events (``before_cursor_execute``) fire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import DateTime, Enum, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

#: One positional parameter: its key in a row, the statement's own value when the row has
#: none (``.values(state='pending')``), its bind processor (None: as is) and whether its
#: values are few and hashable (timestamps, enums: processed once per distinct value).
_Column = tuple[str, Any, Callable[[Any], Any] | None, bool]


class Bulk:
    """``statement`` run with many rows at once (:meth:`run`)."""

    def __init__(
        self, statement: ClauseElement, *, column_keys: Sequence[str] | None = None
    ) -> None:
        self.statement = statement
        self._column_keys = list(column_keys) if column_keys is not None else None
        self._compiled: dict[type[Dialect], tuple[str, list[_Column]]] = {}

    def _for(self, dialect: Dialect) -> tuple[str, list[_Column]]:
        found = self._compiled.get(type(dialect))
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self._column_keys)
            assert isinstance(compiled, SQLCompiler)
            if compiled.insert_prefetch or compiled.update_prefetch:
                prefetch = [*compiled.insert_prefetch, *compiled.update_prefetch]
                defaulted = [column.name for column in prefetch]
                raise ValueError(
                    f"Bulk runs statements as compiled, without column defaults: give a value"
                    f" for {defaulted} in {self.statement}"
                )
            columns: list[_Column] = []
            for name in compiled.positiontup or ():
                bind = compiled.binds[name]
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                columns.append((name, bind.value, processor, _few(bind.type)))
            found = self._compiled[type(dialect)] = (compiled.string, columns)
        return found

    async def run(self, connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute the statement once per row of ``rows`` (one ``executemany``)."""
        if not rows:
            return
        sql, columns = self._for(connection.dialect)
        values = [_column(rows, column) for column in columns]
        await connection.exec_driver_sql(sql, list(zip(*values, strict=True)))


def _few(type_: Any) -> bool:
    """Timestamps and enums: hashable, and few distinct values in one transaction."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return isinstance(type_, DateTime | Enum)


def _column(rows: Sequence[Mapping[str, Any]], column: _Column) -> list[Any]:
    """One parameter's values over ``rows``, processed as SQLAlchemy would."""
    name, default, processor, few = column
    values = [row.get(name, default) for row in rows]
    if processor is None:
        return values
    if few:  # a transaction's rows share their timestamp (its ``now``) and a few states
        done = {value: processor(value) for value in set(values)}
        return [done[value] for value in values]
    return [processor(value) for value in values]
