"""The sender's hot writes: outcomes recorded and attempts marked, one round trip per cycle.

**Attempt marks.** A claimed row is marked attempted (``attempted_at``, one more attempt,
its lease renewed from now) just before its request may leave the sender. After a crash
only rows marked and not yet recorded can have reached the platform, and the sender never
holds more of those than its concurrency, so at most that many customer messages can end
``uncertain`` per crash; every other claimed row goes back to ``pending``. A mark is fenced
(only a row still ``sending`` and not attempted by another sender is marked) and names the
rows it marked, so a row that changed hands is never sent. Marking again with the same
``at`` (a cycle retried after its commit was lost) finds the rows already ours.

**Outcomes.** Each decision is written only if its row is still ours (``sending``, same
attempt), so a sender whose lease lapsed cannot overwrite a newer state, and every sent
message that concerns a customer lands on that customer's timeline in the same write.

Both happen in one *cycle*, which is the sender's cost per row: it runs every few sends,
so it is written at the driver level, beneath SQLAlchemy (whose execution of one statement
cost ~175 µs of CPU on asyncpg against ~45 µs for the same prepared statement, and whose
per-row parameter processing cost more than the send it records):

- PostgreSQL: a single statement (data-modifying CTEs: outcomes, timeline entries, marks),
  run in autocommit (one statement is atomic), the decisions travelling as one JSON
  parameter (``jsonb_to_recordset``): one round trip, prepared once per connection.
- SQLite: one transaction (``BEGIN IMMEDIATE``: the only writer) in one greenlet hop: which
  rows are ours, an executemany of their new values, their timeline entries, the marks.

Values are bound in the forms the column types store (SQLite timestamps through the
column type's own bind processing, JSON as text), so the ORM reads them back as usual.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from sop.delivery.claims import OUTBOX, is_postgres
from sop.delivery.outcomes import Finished, on_timeline, timeline_entry
from store.models import Interaction, OutboxState

TIMELINE = Interaction.metadata.tables[Interaction.__tablename__]


@dataclass(frozen=True)
class Written:
    """What a cycle wrote: the outcomes recorded and the rows marked, by id."""

    recorded: set[int]
    marked: set[int]


async def write_cycle(
    connection: AsyncConnection,
    finished: Sequence[Finished],
    to_mark: Sequence[int],
    *,
    now: datetime,
    lease_until: datetime,
) -> Written:
    """Record ``finished`` and mark ``to_mark`` attempted at ``now`` (leased until
    ``lease_until``), atomically: one statement on PostgreSQL (run it in autocommit, or in
    the caller's transaction), on SQLite a transaction of its own unless the caller has one
    (:meth:`~sop.delivery.link.Link.atomic` runs it right)."""
    if not finished and not to_mark:
        return Written(set(), set())
    if is_postgres(connection):
        return await _postgres(connection, finished, to_mark, now, lease_until)
    return await connection.run_sync(_sqlite, finished, to_mark, now, lease_until)


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A dict for ``json.dumps`` (channels answer dicts already: no copy then)."""
    return mapping if isinstance(mapping, dict) else dict(mapping)


def _timeline_rows(
    finished: Sequence[Finished], written: set[int], now: datetime
) -> list[dict[str, Any]]:
    """The timeline entries of the written rows."""
    return [
        timeline_entry(f.message, f.summary, f.decision.platform_ids, f.customer_facing, now)
        for f in finished
        if f.message.id in written and on_timeline(f.message, f.decision)
    ]


async def record(
    connection: AsyncConnection, finished: Sequence[Finished], *, now: datetime
) -> set[int]:
    """Write each decision if its row is still ours: the ids written."""
    return (await write_cycle(connection, finished, (), now=now, lease_until=now)).recorded


async def mark_attempted(
    connection: AsyncConnection, ids: Sequence[int], *, at: datetime, lease_until: datetime
) -> set[int]:
    """Mark the claimed rows ``ids`` attempted at ``at``: the ids that are ours to send."""
    return (await write_cycle(connection, (), ids, now=at, lease_until=lease_until)).marked


# -- SQLite ------------------------------------------------------------------------------------

_SQLITE_OURS = (
    "SELECT id, attempts FROM outbox"
    " WHERE id IN (SELECT value FROM json_each(?)) AND state = 'sending'"
)
_SQLITE_RECORD = (
    "UPDATE outbox SET state = ?, last_errcode = ?, last_error = ?,"
    " platform_ids = coalesce(?, platform_ids), due_at = coalesce(?, due_at),"
    " settle_at = ?, sent_at = coalesce(?, sent_at), lease_until = NULL, updated_at = ?"
    " WHERE id = ? AND attempts = ? AND state = 'sending'"
)


class _NotAllOurs(Exception):
    """Some row of the group changed hands: roll back, and write again knowing which."""


_SQLITE_TIMELINE = (
    "INSERT INTO interactions (customer_id, direction, kind, summary, data, source, seq,"
    " occurred_at, recorded_at) VALUES (?, ?, ?, ?, ?, 'outbox', 0, ?, ?)"
)
_SQLITE_MARK = (
    "UPDATE outbox SET attempted_at = ?, lease_until = ?,"
    " attempts = CASE WHEN attempted_at IS NULL THEN attempts + 1 ELSE attempts END"
    " WHERE id IN (SELECT value FROM json_each(?)) AND state = 'sending'"
    " AND (attempted_at IS NULL OR attempted_at = ?)"
    " RETURNING id"
)


def _sqlite(
    connection: Connection,
    finished: Sequence[Finished],
    to_mark: Sequence[int],
    now: datetime,
    lease_until: datetime,
) -> Written:
    """The cycle in one transaction (``BEGIN IMMEDIATE`` here, unless the caller holds one:
    a test's), at the driver level (the write gate of :mod:`store.sqlite_inline` is taken
    by ``BEGIN`` and given back by ``COMMIT``).

    The fenced updates' summed row count proves a group was all ours (nearly always); when
    it was not, the transaction is rolled back and written again after reading which rows
    still are."""
    own = not connection.in_transaction()
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for read_first in (False, True) if own else (True,):
            if own:
                cursor.execute("BEGIN IMMEDIATE")
            try:
                written = _sqlite_statements(
                    connection.dialect,
                    cursor,
                    finished,
                    to_mark,
                    now=now,
                    lease_until=lease_until,
                    read_first=read_first,
                )
            except _NotAllOurs:
                cursor.execute("ROLLBACK")
                continue
            except BaseException:
                if own:
                    cursor.execute("ROLLBACK")
                raise
            if own:
                cursor.execute("COMMIT")
            return written
        raise AssertionError("unreachable: the second pass reads first")
    finally:
        cursor.close()


def _sqlite_statements(
    dialect: Dialect,
    cursor: Any,
    finished: Sequence[Finished],
    to_mark: Sequence[int],
    *,
    now: datetime,
    lease_until: datetime,
    read_first: bool,
) -> Written:
    process = OUTBOX.c.due_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    stamp: Callable[[datetime], Any] = process
    at = stamp(now)
    recorded: set[int] = set()
    if finished:
        current: dict[int, int] = {}
        if read_first:
            cursor.execute(_SQLITE_OURS, (json.dumps([f.message.id for f in finished]),))
            current = dict(cursor.fetchall())
        rows = []
        for item in finished:
            message, decision = item.message, item.decision
            if read_first and current.get(message.id) != message.attempts:
                continue
            rows.append(
                (
                    decision.state.value,
                    decision.errcode,
                    decision.error,
                    json.dumps(_plain(decision.platform_ids)) if decision.platform_ids else None,
                    None if decision.retry_at is None else stamp(decision.retry_at),
                    None if decision.settle_at is None else stamp(decision.settle_at),
                    at if decision.state is OutboxState.SENT else None,
                    at,
                    message.id,
                    message.attempts,
                )
            )
            recorded.add(message.id)
        if rows:
            cursor.executemany(_SQLITE_RECORD, rows)
            if cursor.rowcount != len(rows):
                raise _NotAllOurs
        entries = _timeline_rows(finished, recorded, now)
        if entries:
            cursor.executemany(
                _SQLITE_TIMELINE,
                [
                    (
                        e["customer_id"],
                        e["direction"].value,
                        e["kind"],
                        e["summary"],
                        json.dumps(e["data"]),
                        at,
                        at,
                    )
                    for e in entries
                ],  # fmt: skip
            )
    marked: set[int] = set()
    if to_mark:
        cursor.execute(_SQLITE_MARK, (at, stamp(lease_until), json.dumps(list(to_mark)), at))
        marked = {row[0] for row in cursor.fetchall()}
    return Written(recorded, marked)


# -- PostgreSQL --------------------------------------------------------------------------------

_PG_RECORD = """rec AS (
    UPDATE outbox SET state = d.s, last_errcode = d.c, last_error = d.e,
        platform_ids = coalesce(d.p, outbox.platform_ids),
        due_at = coalesce(d.due, outbox.due_at), settle_at = d.settle,
        sent_at = CASE WHEN d.s = 'sent' THEN {now} ELSE outbox.sent_at END,
        lease_until = NULL, updated_at = {now}
    FROM jsonb_to_recordset({outcomes}::jsonb) AS d(
        i bigint, a integer, s varchar(32), c integer, e text, p jsonb,
        due timestamptz, settle timestamptz)
    WHERE outbox.id = d.i AND outbox.attempts = d.a AND outbox.state = 'sending'
    RETURNING outbox.id)"""
_PG_TIMELINE = """tl AS (
    INSERT INTO interactions (customer_id, direction, kind, summary, data, source, seq,
        occurred_at, recorded_at)
    SELECT t.customer_id, t.direction, t.kind, t.summary, t.data, 'outbox', 0, {now}, {now}
    FROM jsonb_to_recordset({timeline}::jsonb) AS t(
        outbox_id bigint, customer_id bigint, direction varchar(32), kind varchar(48),
        summary text, data jsonb)
    JOIN rec ON rec.id = t.outbox_id)"""
_PG_MARK = """mk AS (
    UPDATE outbox SET attempted_at = {at}, lease_until = {lease_until},
        attempts = CASE WHEN attempted_at IS NULL THEN attempts + 1 ELSE attempts END
    WHERE id = ANY({ids}::bigint[]) AND state = 'sending'
        AND (attempted_at IS NULL OR attempted_at = {at})
    RETURNING id)"""


@dataclass(frozen=True)
class _Statement:
    sql: str
    params: tuple[str, ...]  # the names bound as $1, $2, ...


def _pg(*ctes: str, select: str) -> _Statement:
    """The statement with ``{name}`` placeholders numbered in order of first use."""
    template = "WITH " + ", ".join(ctes) + " " + select
    names = tuple(dict.fromkeys(re.findall(r"\{(\w+)\}", template)))
    numbered = template.format(**{name: f"${n}" for n, name in enumerate(names, 1)})
    return _Statement(numbered, names)


_RECORDED = "SELECT true, id FROM rec"
_MARKED = "SELECT false, id FROM mk"
_BOTH = f"{_RECORDED} UNION ALL {_MARKED}"
_PG = {
    # (outcomes?, timeline?, marks?) -> statement
    (True, False, False): _pg(_PG_RECORD, select=_RECORDED),
    (True, True, False): _pg(_PG_RECORD, _PG_TIMELINE, select=_RECORDED),
    (False, False, True): _pg(_PG_MARK, select=_MARKED),
    (True, False, True): _pg(_PG_RECORD, _PG_MARK, select=_BOTH),
    (True, True, True): _pg(_PG_RECORD, _PG_TIMELINE, _PG_MARK, select=_BOTH),
}


async def _postgres(
    connection: AsyncConnection,
    finished: Sequence[Finished],
    to_mark: Sequence[int],
    now: datetime,
    lease_until: datetime,
) -> Written:
    timeline = [
        {
            "outbox_id": e["data"]["outbox_id"],
            "customer_id": e["customer_id"],
            "direction": e["direction"].value,
            "kind": e["kind"],
            "summary": e["summary"],
            "data": e["data"],
        }
        for e in _timeline_rows(finished, {f.message.id for f in finished}, now)
    ]
    values: dict[str, Any] = {
        "now": now,
        "outcomes": json.dumps([_pg_values(f) for f in finished]),
        "timeline": json.dumps(timeline),
        "at": now,
        "lease_until": lease_until,
        "ids": list(to_mark),
    }
    statement = _PG[(bool(finished), bool(timeline), bool(to_mark))]
    # asyncpg directly (SQLAlchemy's execution of one statement cost four times the CPU),
    # in autocommit: the statement commits by itself; asyncpg prepares it once.
    sync = connection.sync_connection
    assert sync is not None
    driver: Any = sync.connection.driver_connection
    rows = await driver.fetch(statement.sql, *(values[name] for name in statement.params))
    recorded: set[int] = set()
    marked: set[int] = set()
    for is_outcome, row_id in rows:
        (recorded if is_outcome else marked).add(row_id)
    return Written(recorded, marked)


def _pg_values(item: Finished) -> dict[str, Any]:
    decision = item.decision
    return {
        "i": item.message.id,
        "a": item.message.attempts,
        "s": decision.state.value,
        "c": decision.errcode,
        "e": decision.error,
        "p": _plain(decision.platform_ids) if decision.platform_ids else None,
        "due": None if decision.retry_at is None else decision.retry_at.isoformat(),
        "settle": None if decision.settle_at is None else decision.settle_at.isoformat(),
    }
