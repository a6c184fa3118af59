"""The floor ``bench.engine`` compares the engine with: its writes in lean raw SQL.

For each due agenda row of the bench playbook the floor does what the engine must write,
through the bare driver (``sqlite3`` / ``asyncpg``) with no ORM, no rendering, no step
registry and none of the engine's reads besides the rows themselves (customer context,
owner, frequency cap, existing outbox keys): insert the outbox row (``tag``, mass ``send``)
with ``ON CONFLICT DO NOTHING`` and, for the send, the marketing touch; insert the step-run
trace; mark the row ``done``; bump the enrollment's ``seq``; insert the next agenda row (the
next step due now, or the reply timeout two days later after the ``wait``).

Two shapes, both keeping each step atomic with its effects:

- ``together`` (:func:`run_floor`, the floor the engine's ratio is taken against): as the
  engine does it, ``batch`` rows per transaction: lock the oldest due rows joined to their
  enrollments and customers in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), then
  each kind of write once with all its rows (``executemany``), commit. The database's share
  of the engine's work, sent the way the engine sends it; engine / floor is what the
  engine's Python (rendering, step logic, its extra reads) leaves of it.
- ``alone`` (:func:`run_floor_alone`, for reference): a hand-written worker committing each
  step on its own: claim ``batch`` rows (marked ``running`` with a lease, one statement),
  then per row one transaction with one statement per write.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.engine_timing import Timing
from store.db import normalize_url, sqlite_path

LEASE = timedelta(minutes=5)
REPLY_TIMEOUT = timedelta(days=2)
ACTIONS = (("mark", "tag"), ("hello", "send"), ("wait", "wait_for_reply"))

_COLUMNS = """a.id, a.enrollment_id, a.seq, a.step_index, a.due_at, e.staff_userid, c.id,
       c.external_userid, c.name
FROM agenda a JOIN enrollments e ON e.id = a.enrollment_id
JOIN customers c ON c.id = e.customer_id"""
TAKE = f"""
SELECT {_COLUMNS}
WHERE a.id IN (
    SELECT id FROM agenda WHERE state = 'pending' AND due_at <= $1
    ORDER BY due_at, id LIMIT $2 {{lock}}
)
{{lock_of}}
"""
CLAIM = """
UPDATE agenda SET state = 'running', lease_until = $1, attempts = attempts + 1, updated_at = $2
WHERE id IN (
    SELECT id FROM agenda WHERE state = 'pending' AND due_at <= $3
    ORDER BY due_at, id LIMIT $4 {lock}
)
RETURNING id, attempts
"""
RELOCK = f"""
SELECT {_COLUMNS}
WHERE a.id = $1 AND a.state = 'running' AND a.attempts = $2 {{lock_of}}
"""
OUTBOX = """
INSERT INTO outbox (idempotency_key, channel, recipient, payload, due_at, state, attempts,
                    platform_ids, customer_id, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'pending', 0, '{}', $6, $7, $8)
ON CONFLICT (idempotency_key) DO NOTHING
"""
TOUCH = "INSERT INTO marketing_touches (customer_id, at, source) VALUES ($1, $2, $3)"
TRACE = """
INSERT INTO step_runs (enrollment_id, seq, step_id, action, due_at, ran_at, outcome, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
DONE = "UPDATE agenda SET state = 'done', lease_until = NULL, updated_at = $1 WHERE id = $2"
BUMP = "UPDATE enrollments SET seq = seq + 1, waiting = $1, updated_at = $2 WHERE id = $3"
NEXT = """
INSERT INTO agenda (enrollment_id, seq, step_index, kind, due_at, state, attempts,
                    created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7)
"""
WRITES = (OUTBOX, TOUCH, TRACE, DONE, BUMP, NEXT)
_LOCKS = {
    "postgres": {"lock": "FOR UPDATE SKIP LOCKED", "lock_of": "FOR UPDATE OF a, e"},
    "sqlite": {"lock": "", "lock_of": ""},
}


def _sql(sql: str, backend: str) -> str:
    for name, clause in _LOCKS[backend].items():
        sql = sql.replace("{" + name + "}", clause)
    return re.sub(r"\$\d+", "?", sql) if backend == "sqlite" else sql


def _text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def writes(row: Sequence[Any], now: datetime) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements of one executed row (``row``: what :data:`TAKE` returns), each with
    its arguments: the same writes the engine's step makes."""
    agenda_id, enrollment_id, seq, index, due_at, staff, customer_id, external_userid, name = row
    step_id, action = ACTIONS[index]
    key = f"enrollment:{enrollment_id}:seq:{seq}"
    out: list[tuple[str, tuple[Any, ...]]] = []
    if action == "tag":
        payload = {"userid": staff, "external_userid": external_userid, "add_tag": ["bench"]}
        out.append((OUTBOX, (key, "wecom_tag", external_userid, payload, now, customer_id)))
    elif action == "send":
        content = f"{name}，您好！我是{staff}。回复“1”了解详情。"
        payload = {"sender": staff, "external_userid": [external_userid], "text": content}
        out.append((OUTBOX, (key, "wecom_mass", external_userid, payload, now, customer_id)))
        out.append((TOUCH, (customer_id, now, f"playbook:bench:step:{step_id}")))
    detail = {"kind": "step", "outbox_key": key}
    outcome = "waiting" if action == "wait_for_reply" else "done"
    out.append((TRACE, (enrollment_id, seq, step_id, action, due_at, now, outcome, detail)))
    out.append((DONE, (now, agenda_id)))
    last = index == len(ACTIONS) - 1
    out.append((BUMP, ("reply" if last else "none", now, enrollment_id)))
    kind, due = ("reply_timeout", now + REPLY_TIMEOUT) if last else ("step", now)
    out.append((NEXT, (enrollment_id, seq + 1, index if last else index + 1, kind, due)))
    return [(sql, _fill(sql, args, now)) for sql, args in out]


def _fill(sql: str, args: tuple[Any, ...], now: datetime) -> tuple[Any, ...]:
    """Append the stamps a statement takes after its own arguments."""
    stamps = {OUTBOX: (now, now), NEXT: (now, now)}.get(sql, ())
    return (*args, *stamps)


def _grouped(rows: Sequence[Sequence[Any]], now: datetime) -> dict[str, list[tuple[Any, ...]]]:
    """The writes of ``rows`` by statement, in :data:`WRITES` order."""
    by_statement: dict[str, list[tuple[Any, ...]]] = {sql: [] for sql in WRITES}
    for row in rows:
        for sql, args in writes(row, now):
            by_statement[sql].append(args)
    return by_statement


def _sqlite_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        _text(v) if isinstance(v, datetime) else json.dumps(v) if isinstance(v, dict) else v
        for v in args
    )


def _note(timing: Timing, began: float, steps: int) -> None:
    """Each step of a transaction waited for all of it, as in the engine."""
    elapsed = time.perf_counter() - began
    for _ in range(steps):
        timing.note(elapsed)


async def run_floor(url: str, *, batch: int) -> Timing:
    """Every due row, ``batch`` to a transaction with one ``executemany`` per kind of write."""
    path = sqlite_path(url)
    if path is not None:
        return _together_sqlite(str(path), batch)
    return await _together_postgres(url, batch)


async def run_floor_alone(url: str, *, batch: int) -> Timing:
    """Every due row, one transaction each with one statement per write."""
    path = sqlite_path(url)
    if path is not None:
        return _alone_sqlite(str(path), batch)
    return await _alone_postgres(url, batch)


def _connect_sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _together_sqlite(path: str, batch: int) -> Timing:
    timing, conn = Timing(), _connect_sqlite(path)
    take = _sql(TAKE, "sqlite")
    started = time.perf_counter()
    try:
        while True:
            began, now = time.perf_counter(), datetime.now(UTC)
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(take, (_text(now), batch)).fetchall()
            for sql, args in _grouped(rows, now).items():
                if args:
                    conn.executemany(_sql(sql, "sqlite"), [_sqlite_args(a) for a in args])
            conn.execute("COMMIT")
            if not rows:
                break
            _note(timing, began, len(rows))
    finally:
        conn.close()
    timing.seconds = time.perf_counter() - started
    return timing


def _alone_sqlite(path: str, batch: int) -> Timing:
    timing, conn = Timing(), _connect_sqlite(path)
    claim, relock = _sql(CLAIM, "sqlite"), _sql(RELOCK, "sqlite")
    started = time.perf_counter()
    try:
        while True:
            now = datetime.now(UTC)
            conn.execute("BEGIN IMMEDIATE")
            claims = conn.execute(claim, (_text(now + LEASE), _text(now), _text(now), batch))
            claimed = claims.fetchall()
            conn.execute("COMMIT")
            if not claimed:
                break
            for agenda_id, attempts in claimed:
                began, now = time.perf_counter(), datetime.now(UTC)
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute(relock, (agenda_id, attempts)).fetchone()
                for sql, args in writes(row, now):
                    conn.execute(_sql(sql, "sqlite"), _sqlite_args(args))
                conn.execute("COMMIT")
                _note(timing, began, 1)
    finally:
        conn.close()
    timing.seconds = time.perf_counter() - started
    return timing


async def _connect_postgres(url: str) -> Any:
    import asyncpg

    dsn = normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


async def _together_postgres(url: str, batch: int) -> Timing:
    timing, conn = Timing(), await _connect_postgres(url)
    take = _sql(TAKE, "postgres")
    started = time.perf_counter()
    try:
        while True:
            began, now = time.perf_counter(), datetime.now(UTC)
            async with conn.transaction():
                rows = await conn.fetch(take, now, batch)
                for sql, args in _grouped([tuple(r) for r in rows], now).items():
                    if args:
                        await conn.executemany(sql, args)
            if not rows:
                break
            _note(timing, began, len(rows))
    finally:
        await conn.close()
    timing.seconds = time.perf_counter() - started
    return timing


async def _alone_postgres(url: str, batch: int) -> Timing:
    timing, conn = Timing(), await _connect_postgres(url)
    claim, relock = _sql(CLAIM, "postgres"), _sql(RELOCK, "postgres")
    started = time.perf_counter()
    try:
        while True:
            now = datetime.now(UTC)
            claimed = await conn.fetch(claim, now + LEASE, now, now, batch)
            if not claimed:
                break
            for agenda_id, attempts in claimed:
                began, now = time.perf_counter(), datetime.now(UTC)
                async with conn.transaction():
                    row = await conn.fetchrow(relock, agenda_id, attempts)
                    assert row is not None, f"agenda row {agenda_id} was taken from the floor"
                    for sql, args in writes(tuple(row), now):
                        await conn.execute(sql, *args)
                _note(timing, began, 1)
    finally:
        await conn.close()
    timing.seconds = time.perf_counter() - started
    return timing
