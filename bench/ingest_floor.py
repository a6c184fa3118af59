"""The floor ``bench.ingest --full`` compares inbox processing with: its writes in raw SQL.

For the bench's traffic (:mod:`bench.ingest_traffic`, already in the inbox) the floor writes
what processing those callbacks writes, through the bare driver (``sqlite3`` / ``asyncpg``)
with no ORM, no parsing (the payloads' fields are read beforehand, untimed), no handlers, no
events and none of processing's reads. Timed, per batch of rows in arrival order: deciding the
parameters from the fields (in the driver's terms: text timestamps and JSON for SQLite), then
one transaction that claims the batch and runs one ``executemany`` per table: staff,
customers (and the Official Account followers' customers), followers, relationships, groups
and members, customer touches, the refresh queue, the timeline, enrollments and their first
agenda rows (expo adds in onboarding; a customer's first price question in keyword_reply and
first group join in group_welcome, which is what the toolkit enrolls while the engine holds
the steps), and the rows marked done. So the floor is the database's share of processing;
toolkit / floor is what the toolkit's Python and reads leave of it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from store.db import normalize_url, sqlite_path

CLAIM = "SELECT id, source, payload FROM inbox WHERE state = 'pending' ORDER BY id LIMIT $1"
STAFF = """INSERT INTO staff (userid, departments, created_at) VALUES ($1, '[]', $2)
ON CONFLICT (userid) DO NOTHING"""
CUSTOMER = """INSERT INTO customers (external_userid, custom_fields, created_at)
VALUES ($1, '{}', $2) ON CONFLICT (external_userid) DO NOTHING"""
FOLLOWER_CUSTOMER = """INSERT INTO customers (unionid, custom_fields, created_at)
SELECT $1::varchar, '{}', $2
WHERE NOT EXISTS (SELECT 1 FROM customers WHERE unionid = $1::varchar)"""
FOLLOWER = """INSERT INTO mp_followers (account, openid, customer_id, subscribed, last_message_at)
VALUES ($1, $2::varchar, (SELECT id FROM customers WHERE unionid = $2::varchar), TRUE, $3)
ON CONFLICT (account, openid) DO UPDATE SET subscribed = TRUE, last_message_at = $3"""
FOLLOW = """INSERT INTO customer_staff (customer_id, staff_userid, state, channel_state, added_at)
VALUES ((SELECT id FROM customers WHERE external_userid = $1), $2, $3, $4, $5)
ON CONFLICT (customer_id, staff_userid)
DO UPDATE SET state = $3, channel_state = coalesce($4, customer_staff.channel_state)"""
GROUP = """INSERT INTO customer_groups (chat_id, created_at) VALUES ($1, $2)
ON CONFLICT (chat_id) DO NOTHING"""
MEMBER = """INSERT INTO group_members (group_id, member_userid, member_type, customer_id,
                           joined_at, join_scene)
VALUES ((SELECT id FROM customer_groups WHERE chat_id = $1), $2::varchar, 2,
        (SELECT id FROM customers WHERE external_userid = $2::varchar), $3, 3)
ON CONFLICT (group_id, member_userid) DO NOTHING"""
TOUCH = "UPDATE customers SET last_interaction_at = $1 WHERE {key} = $2"
REFRESH = """INSERT INTO refresh_requests (kind, key, due_at, attempts, requested_at, version)
VALUES ($1, $2, $3, 0, $3, 1) ON CONFLICT (kind, key)
DO UPDATE SET requested_at = $3, version = refresh_requests.version + 1"""
TIMELINE = """INSERT INTO interactions (customer_id, staff_userid, direction, kind, summary, data,
                          source, inbox_id, seq, occurred_at, recorded_at)
VALUES ({customer}, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10)"""
ENROLL = """INSERT INTO enrollments (key, playbook, version_id, customer_id, staff_userid, state,
                         waiting, context, seq, enrolled_at, updated_at)
VALUES ($1, $2::varchar, (SELECT max(id) FROM playbook_versions WHERE name = $2::varchar),
        {customer}, $4,
        'active', 'none', $5, 1, $6, $6)"""
AGENDA = """INSERT INTO agenda (enrollment_id, seq, step_index, kind, due_at, state, attempts,
                    created_at, updated_at)
VALUES ((SELECT id FROM enrollments WHERE key = $1), 1, 0, 'step', $2, 'pending', 0, $2, $2)"""
DONE = """UPDATE inbox SET state = 'done', attempts = attempts + 1, processed_at = $1
WHERE id = $2"""

BY_EXTERNAL = "(SELECT id FROM customers WHERE external_userid = $1)"
BY_FOLLOWER = "(SELECT id FROM customers WHERE unionid = $1)"


@dataclass
class Writes:
    """One batch's statements: SQL -> parameter tuples, in the order they run."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, sql: str, *args: Any) -> None:
        self.rows[sql].append(args)

    def ordered(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """First seen first, but agenda rows after every enrollment and the rows done last."""
        last = {AGENDA: 1, DONE: 2}
        return sorted(self.rows.items(), key=lambda item: last.get(item[0], 0))


#: An inbox row read beforehand: id, source, its fields, and the member of a group change.
Parsed = tuple[int, str, dict[str, str], str]


def _parsed(row_id: int, source: str, payload: str) -> Parsed:
    root = ET.fromstring(payload)
    member = next((item.text or "" for item in root.iter("Item")), "")
    return row_id, source, {child.tag: (child.text or "") for child in root}, member


@dataclass
class Planner:
    """What processing writes for each row; remembers what earlier rows enrolled."""

    seen_price: set[str] = field(default_factory=set)
    seen_join: set[str] = field(default_factory=set)

    def plan(self, row: Parsed, now: datetime, w: Writes) -> None:
        row_id, source, f, member = row
        at = datetime.fromtimestamp(int(f["CreateTime"]), UTC)
        customer_sql = TIMELINE.format(customer=BY_EXTERNAL)
        event = f.get("Event", "")
        data: dict[str, Any]
        if source.startswith("mp:"):
            openid = f["FromUserName"]
            w.add(FOLLOWER_CUSTOMER, openid, now)
            w.add(FOLLOWER, "news", openid, at)
            w.add(TOUCH.format(key="unionid"), at, openid)
            data = {"msg_type": "text", "msg_id": f["MsgId"], "text": f["Content"]}
            w.add(
                TIMELINE.format(customer=BY_FOLLOWER),
                openid, None, "in", "message", f["Content"], data, source, row_id, at, now,
            )  # fmt: skip
            if "价格" in f["Content"] and openid not in self.seen_price:
                self.seen_price.add(openid)
                self._enroll(w, "keyword_reply", row_id=row_id, who=openid, staff=None,
                             customer=BY_FOLLOWER, now=now)  # fmt: skip
        elif event == "change_external_contact":
            ext, staff, change = f["ExternalUserID"], f["UserID"], f["ChangeType"]
            w.add(STAFF, staff, now)
            w.add(CUSTOMER, ext, now)
            w.add(REFRESH, "staff", staff, now)
            state = {"del_follow_user": "removed"}.get(change, "active")
            w.add(FOLLOW, ext, staff, state, f.get("State"), at)
            if change.startswith("add"):
                w.add(TOUCH.format(key="external_userid"), at, ext)
            if change != "del_follow_user":
                w.add(REFRESH, "customer", ext, now)
            data = {"change_type": change, "userid": staff, "external_userid": ext}
            w.add(customer_sql, ext, staff, "event", change, change, data, source, row_id, at, now)
            if f.get("State") == "expo2026":
                self._enroll(w, "onboarding", row_id=row_id, who=ext, staff=staff,
                             customer=BY_EXTERNAL, now=now)  # fmt: skip
        elif event == "change_external_chat":
            chat = f["ChatId"]
            w.add(GROUP, chat, now)
            w.add(CUSTOMER, member, now)
            w.add(MEMBER, chat, member, at)
            w.add(REFRESH, "group", chat, now)
            data = {"chat_id": chat, "member": member}
            w.add(customer_sql, member, None, "event", "joined_group", "joined", data, source,
                  row_id, at, now)  # fmt: skip
            if member not in self.seen_join:
                self.seen_join.add(member)
                self._enroll(w, "group_welcome", row_id=row_id, who=member, staff=None,
                             customer=BY_EXTERNAL, now=now)  # fmt: skip
        else:
            sender = f["FromUserName"]
            kind = "message" if f.get("MsgType") == "text" else "staff_action"
            data = {"msg_type": f.get("MsgType"), "text": f.get("Content", "")}
            w.add(TIMELINE.format(customer="$1"), None, sender, "in", kind, f.get("Content", ""),
                  data, source, row_id, at, now)  # fmt: skip
        w.add(DONE, now, row_id)

    @staticmethod
    def _enroll(
        w: Writes, playbook: str, *, row_id: int, who: str, staff: str | None, customer: str,
        now: datetime,
    ) -> None:  # fmt: skip
        key = f"{playbook}:{who}:inbox:{row_id}"
        context: dict[str, Any] = {
            "event": playbook,
            "occurred_at": now.isoformat(),
            "staff_userid": staff,
        }
        w.add(ENROLL.format(customer=customer.replace("$1", "$3")), key, playbook, who, staff,
              context, now)  # fmt: skip
        w.add(AGENDA, key, now + timedelta(seconds=0))


def _sqlite_sql(sql: str) -> str:
    """``$n`` to ``?n`` (SQLite's numbered parameters take the same positions)."""
    return re.sub(r"\$(\d+)", r"?\1", sql).replace("TRUE", "1").replace("::varchar", "")


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


@dataclass(frozen=True)
class FloorResult:
    rows: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.rows * 1e6


async def run_floor(url: str, batch: int) -> FloorResult:
    """Process every pending inbox row the floor's way, ``batch`` rows a transaction."""
    path = sqlite_path(url)
    if path is not None:
        return _floor_sqlite(str(path), batch)
    return await _floor_postgres(url, batch)


def _floor_sqlite(path: str, batch: int) -> FloorResult:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    planner, done = Planner(), 0
    rows = [_parsed(*row) for row in conn.execute(_sqlite_sql(CLAIM), (10**9,))]
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(rows), batch):
        writes, now = Writes(), datetime.now(UTC)
        for row in rows[start : start + batch]:
            planner.plan(row, now, writes)
        conn.execute("BEGIN IMMEDIATE")
        done += len(conn.execute(_sqlite_sql(CLAIM), (batch,)).fetchall())
        for sql, params in writes.ordered():
            conn.executemany(_sqlite_sql(sql), [tuple(map(_sqlite_value, a)) for a in params])
        conn.execute("COMMIT")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return FloorResult(done, seconds, cpu)


async def _floor_postgres(url: str, batch: int) -> FloorResult:
    import asyncpg

    dsn = normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    planner, done = Planner(), 0
    rows = [_parsed(*row) for row in await conn.fetch(CLAIM, 10**9)]
    claim = CLAIM + " FOR UPDATE SKIP LOCKED"
    started, cpu = time.perf_counter(), time.process_time()
    try:
        for start in range(0, len(rows), batch):
            writes, now = Writes(), datetime.now(UTC)
            for row in rows[start : start + batch]:
                planner.plan(row, now, writes)
            async with conn.transaction():
                done += len(await conn.fetch(claim, batch))
                for sql, params in writes.ordered():
                    await conn.executemany(sql, params)
    finally:
        await conn.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return FloorResult(done, seconds, cpu)
