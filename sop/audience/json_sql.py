"""The two questions audiences ask of JSON columns, compiled per dialect.

``customers.custom_fields`` and ``staff.departments`` are JSONB on PostgreSQL and JSON text on
SQLite. A condition must mean the same on both, and JSON types matter: ``"1"``, ``1`` and
``true`` are three different values (SQLite's ``json_extract`` would make ``true`` equal to
``1``). So each question is a small SQL construct with one compilation per dialect:

* PostgreSQL: JSONB containment (``@>``), which compares types exactly and numbers by value
  (``1`` equals ``1.0``), and can use a GIN index on the column should one be added;
* SQLite: ``EXISTS`` over ``json_each``, checking the member's JSON ``type`` and its value.

Values travel as bound parameters inside the construct, so SQLAlchemy's statement cache stays
correct (the value's kind picks the class, and with it the SQL shape).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    SQLColumnExpression,
    String,
    Text,
    bindparam,
    cast,
    false,
    func,
    true,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

_INT64 = 2**63


class _JsonPredicate(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True
    #: The ``json_each`` member types that may match (SQLite).
    sqlite_types: ClassVar[str] = ""

    def parts(self) -> list[ColumnElement[Any]]:
        return list(self.clauses.clauses)


class _FieldIsText(_JsonPredicate):
    """``column`` is a JSON object whose member ``key`` is the string ``value``."""

    sqlite_types = "('text')"
    inherit_cache = True


class _FieldIsNumber(_JsonPredicate):
    """... whose member ``key`` is a number equal to ``value``."""

    sqlite_types = "('integer', 'real')"
    inherit_cache = True


class _FieldIsTrue(_JsonPredicate):
    sqlite_types = "('true')"
    inherit_cache = True


class _FieldIsFalse(_JsonPredicate):
    sqlite_types = "('false')"
    inherit_cache = True


class _ArrayHasInteger(_JsonPredicate):
    """``column`` is a JSON array holding the integer ``value`` (``staff.departments``)."""

    inherit_cache = True


def json_field_equals(
    column: SQLColumnExpression[Any], key: str, value: object
) -> ColumnElement[bool]:
    """``column[key] == value`` with JSON types respected: a string never equals a number,
    a boolean never equals 1; numbers compare by value."""
    name = bindparam(None, key, type_=String())
    if isinstance(value, bool):
        return (_FieldIsTrue if value else _FieldIsFalse)(column, name)
    if isinstance(value, int):
        return _FieldIsNumber(column, name, _integer(value, f"custom field {key!r}"))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"custom field {key!r}: {value!r} is not a JSON number")
        return _FieldIsNumber(column, name, bindparam(None, value, type_=Float()))
    if isinstance(value, str):
        return _FieldIsText(column, name, bindparam(None, value, type_=String()))
    raise TypeError(
        f"custom field {key!r}: expected a string, number or boolean, got {type(value).__name__}"
    )


def json_array_has(column: SQLColumnExpression[Any], value: int) -> ColumnElement[bool]:
    """``value in column`` for a JSON array of integers (``"3"`` does not count as 3)."""
    return _ArrayHasInteger(column, _integer(value, "department id"))


def _integer(value: int, what: str) -> ColumnElement[int]:
    if not -_INT64 <= value < _INT64:
        raise ValueError(f"{what}: {value} does not fit in a 64-bit integer")
    return bindparam(None, value, type_=BigInteger())


# --- PostgreSQL ------------------------------------------------------------------------


@compiles(_FieldIsText, "postgresql")
@compiles(_FieldIsNumber, "postgresql")
def _pg_field(element: _JsonPredicate, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, value = element.parts()
    document = func.jsonb_build_object(cast(key, Text), cast(value, value.type))
    return str(compiler.process(column.op("@>")(document), **kw))


@compiles(_FieldIsTrue, "postgresql")
@compiles(_FieldIsFalse, "postgresql")
def _pg_flag(element: _JsonPredicate, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = element.parts()
    flag = true() if isinstance(element, _FieldIsTrue) else false()
    document = func.jsonb_build_object(cast(key, Text), flag)
    return str(compiler.process(column.op("@>")(document), **kw))


@compiles(_ArrayHasInteger, "postgresql")
def _pg_array(element: _JsonPredicate, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = element.parts()
    document = func.jsonb_build_array(cast(value, BigInteger))
    return str(compiler.process(column.op("@>")(document), **kw))


# --- SQLite ----------------------------------------------------------------------------


@compiles(_FieldIsText, "sqlite")
@compiles(_FieldIsNumber, "sqlite")
@compiles(_FieldIsTrue, "sqlite")
@compiles(_FieldIsFalse, "sqlite")
def _sqlite_field(element: _JsonPredicate, compiler: SQLCompiler, **kw: Any) -> str:
    column, key, *value = (compiler.process(part, **kw) for part in element.parts())
    test = f" AND member.value = {value[0]}" if value else ""
    types = element.sqlite_types
    return (
        f"EXISTS (SELECT 1 FROM json_each({column}) AS member"
        f" WHERE member.key = {key} AND member.type IN {types}{test})"
    )


@compiles(_ArrayHasInteger, "sqlite")
def _sqlite_array(element: _JsonPredicate, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = (compiler.process(part, **kw) for part in element.parts())
    return (
        f"EXISTS (SELECT 1 FROM json_each({column}) AS item"
        f" WHERE item.type = 'integer' AND item.value = {value})"
    )


@compiles(_JsonPredicate)
def _unsupported(element: _JsonPredicate, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(
        f"audience JSON conditions support sqlite and postgresql, not {compiler.dialect.name}"
    )
