"""The floor ``bench.engine`` compares the engine with: its writes in lean raw SQL.

For each due agenda row of the bench playbook the floor does what the engine's transaction
must write, through the bare driver (``sqlite3`` / ``asyncpg``) with no ORM, no rendering,
no step registry and none of the engine's reads (customer context, owner, frequency cap):

- claim: one statement per batch marks up to ``batch`` due rows ``running`` with a lease
  (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), oldest due first, like ``claim_due``;
- per row, one transaction: re-lock the row (still ours?) joined to its enrollment and
  customer; insert the outbox row (``tag``, mass ``send``) with ``ON CONFLICT DO NOTHING``
  and, for the send, the marketing touch; insert the step-run trace; mark the row ``done``;
  bump the enrollment's ``seq``; insert the next agenda row (the next step due now, or the
  reply timeout two days later after the ``wait``).

So the floor is the database's share of the engine's work; engine / floor is what the
engine's Python (and its reads) leaves of it.
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

CLAIM = """
UPDATE agenda SET state = 'running', lease_until = $1, attempts = attempts + 1, updated_at = $2
WHERE id IN (
    SELECT id FROM agenda
    WHERE (state = 'pending' AND due_at <= $3) OR (state = 'running' AND lease_until < $4)
    ORDER BY due_at, id LIMIT $5 {lock}
)
RETURNING id, attempts
"""
RELOCK = """
SELECT a.enrollment_id, a.seq, a.step_index, a.due_at, e.staff_userid, c.id,
       c.external_userid, c.name
FROM agenda a JOIN enrollments e ON e.id = a.enrollment_id
JOIN customers c ON c.id = e.customer_id
WHERE a.id = $1 AND a.state = 'running' AND a.attempts = $2 {lock}
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


def _sqlite(sql: str) -> str:
    return re.sub(r"\$\d+", "?", sql.replace("{lock}", ""))


def _text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _writes(
    row: Sequence[Any], agenda_id: int, now: datetime
) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements of one executed row (``row`` is what :data:`RELOCK` returned)."""
    enrollment_id, seq, index, due_at, staff, customer_id, external_userid, name = row
    step_id, action = ACTIONS[index]
    key = f"enrollment:{enrollment_id}:seq:{seq}"
    writes: list[tuple[str, tuple[Any, ...]]] = []
    if action == "tag":
        payload = {"userid": staff, "external_userid": external_userid, "add_tag": ["bench"]}
        writes.append((OUTBOX, (key, "wecom_tag", external_userid, payload, now, customer_id)))
    elif action == "send":
        content = f"{name}，您好！我是{staff}。回复“1”了解详情。"
        payload = {"sender": staff, "external_userid": [external_userid], "text": content}
        writes.append((OUTBOX, (key, "wecom_mass", external_userid, payload, now, customer_id)))
        writes.append((TOUCH, (customer_id, now, f"playbook:bench:step:{step_id}")))
    detail = {"kind": "step", "outbox_key": key}
    outcome = "waiting" if action == "wait_for_reply" else "done"
    writes.append((TRACE, (enrollment_id, seq, step_id, action, due_at, now, outcome, detail)))
    writes.append((DONE, (now, agenda_id)))
    last = index == len(ACTIONS) - 1
    writes.append((BUMP, ("reply" if last else "none", now, enrollment_id)))
    kind, due = ("reply_timeout", now + REPLY_TIMEOUT) if last else ("step", now)
    writes.append((NEXT, (enrollment_id, seq + 1, index if last else index + 1, kind, due)))
    return writes


def _fill(sql: str, args: tuple[Any, ...], now: datetime) -> tuple[Any, ...]:
    """Append the stamps a statement takes after its own arguments."""
    stamps = {OUTBOX: (now, now), NEXT: (now, now)}.get(sql, ())
    return (*args, *stamps)


async def run_floor(url: str, *, batch: int) -> Timing:
    """Execute every due row the floor's way until none is left."""
    path = sqlite_path(url)
    if path is not None:
        return _floor_sqlite(str(path), batch)
    return await _floor_postgres(url, batch)


def _floor_sqlite(path: str, batch: int) -> Timing:
    timing = Timing()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    started = time.perf_counter()
    try:
        while True:
            now = datetime.now(UTC)
            conn.execute("BEGIN IMMEDIATE")
            claims = conn.execute(
                _sqlite(CLAIM), (_text(now + LEASE), _text(now), _text(now), _text(now), batch)
            ).fetchall()
            conn.execute("COMMIT")
            if not claims:
                break
            for agenda_id, attempts in claims:
                began = time.perf_counter()
                now = datetime.now(UTC)
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute(_sqlite(RELOCK), (agenda_id, attempts)).fetchone()
                for sql, args in _writes(row, agenda_id, now):
                    values = [
                        _text(v) if isinstance(v, datetime) else v for v in _fill(sql, args, now)
                    ]
                    values = [json.dumps(v) if isinstance(v, dict) else v for v in values]
                    conn.execute(_sqlite(sql), values)
                conn.execute("COMMIT")
                timing.note(time.perf_counter() - began)
    finally:
        conn.close()
    timing.seconds = time.perf_counter() - started
    return timing


async def _floor_postgres(url: str, batch: int) -> Timing:
    import asyncpg

    timing = Timing()
    dsn = normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    claim = CLAIM.replace("{lock}", "FOR UPDATE SKIP LOCKED")
    relock = RELOCK.replace("{lock}", "FOR UPDATE OF a, e")
    started = time.perf_counter()
    try:
        while True:
            now = datetime.now(UTC)
            claims = await conn.fetch(claim, now + LEASE, now, now, now, batch)
            if not claims:
                break
            for agenda_id, attempts in claims:
                began = time.perf_counter()
                now = datetime.now(UTC)
                async with conn.transaction():
                    row = await conn.fetchrow(relock, agenda_id, attempts)
                    assert row is not None, f"agenda row {agenda_id} was taken from the floor"
                    for sql, args in _writes(tuple(row), agenda_id, now):
                        await conn.execute(sql, *_fill(sql, args, now))
                timing.note(time.perf_counter() - began)
    finally:
        await conn.close()
    timing.seconds = time.perf_counter() - started
    return timing
