"""Synthetic engine population for ``bench.engine``, written with raw bulk inserts.

A million enrollments through :func:`sop.engine.enroll.enroll` would take longer than the
benchmark itself, so the rows are written as the engine leaves them, straight through the
driver (``sqlite3.executemany`` on SQLite, ``asyncpg`` ``COPY`` on PostgreSQL): per
enrollment ``n`` one customer, its relationship to an owning staff member, an active
enrollment in the bench playbook at ``seq`` 1, and its first agenda row (``step_index`` 0),
pending and due either now or between one and 31 days from now. Customers, relationships and
enrollments take the id ``n``; agenda rows take the table's own ids, like the ones the
engine inserts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sop.engine.catalog import register
from sop.playbooks.model import Playbook
from store.db import create_engine, normalize_url, session_factory, sqlite_path
from store.migrate import upgrade
from store.models import Staff

STAFF = 200
CHUNK = 50_000
#: Future rows fall due from a day on, over 30 days: none falls due during a run.
FUTURE_FROM = timedelta(days=1)
FUTURE_MINUTES = 30 * 24 * 60
BENCH_PLAYBOOK = "bench"
#: The bench playbook's steps that run at once: tag, send, and the wait (its timeout is
#: two days away).
STEPS_PER_ENROLLMENT = 3

TABLES: dict[str, tuple[str, ...]] = {
    "customers": ("id", "external_userid", "name", "custom_fields", "created_at"),
    "customer_staff": ("id", "customer_id", "staff_userid", "state", "added_at"),
    "enrollments": (
        "id",
        "key",
        "playbook",
        "version_id",
        "customer_id",
        "staff_userid",
        "state",
        "waiting",
        "context",
        "seq",
        "enrolled_at",
        "updated_at",
    ),  # fmt: skip
    "agenda": (
        "enrollment_id",
        "seq",
        "step_index",
        "kind",
        "due_at",
        "state",
        "attempts",
        "created_at",
        "updated_at",
    ),  # fmt: skip
}


def bench_playbook() -> Playbook:
    """What a real onboarding does: tag, a mass message rendered from the customer's own
    context (owner, tags, fields), then wait two days for a reply."""
    text = (
        "{{ customer.name }}，您好！我是{{ owner.name }}。"
        "{% if customer.tags %}您关注的{{ customer.tags | join('、') }}有新活动。{% endif %}"
        "回复“1”了解详情。"
    )
    return Playbook.model_validate(
        {
            "name": BENCH_PLAYBOOK,
            "trigger": {"manual": True},
            "steps": [
                {"id": "mark", "tag": "bench"},
                {"id": "hello", "send": {"channel": "mass", "text": text}},
                {"id": "wait", "wait_for_reply": {"timeout": "2d"}},
            ],
        }
    )


def staff_userid(n: int) -> str:
    return f"bench{n % STAFF:03d}"


async def prepare(url: str, now: datetime) -> int:
    """Migrate, add the staff and register the bench playbook; its version id."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with session_factory(engine).begin() as session:
            for m in range(STAFF):
                session.add(
                    Staff(userid=staff_userid(m), name=f"员工{m}", status=1, created_at=now)
                )
            playbook = bench_playbook()
            catalog = await register(session, {playbook.name: playbook}, now=now)
        return catalog.latest(BENCH_PLAYBOOK).version_id
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Batch:
    """Enrollments ``first`` .. ``first + count - 1``, due at ``due_at`` (None: spread over
    the next 30 days)."""

    first: int
    count: int
    version_id: int
    now: datetime
    due_at: datetime | None = None

    def rows(self, table: str) -> Iterator[tuple[Any, ...]]:
        now = self.now
        for n in range(self.first, self.first + self.count):
            staff = staff_userid(n)
            if table == "customers":
                yield (n, f"wmBench{n:08d}", f"客户{n}", "{}", now)
            elif table == "customer_staff":
                yield (n, n, staff, "active", now)
            elif table == "enrollments":
                yield (
                    n, f"bench:{n}", BENCH_PLAYBOOK, self.version_id, n, staff, "active",
                    "none", "{}", 1, now, now,
                )  # fmt: skip
            else:
                spread = timedelta(minutes=(n * 7919) % FUTURE_MINUTES)
                due = self.due_at or now + FUTURE_FROM + spread
                yield (n, 1, 0, "step", due, "pending", 0, now, now)


async def add(url: str, batch: Batch) -> None:
    """Write ``batch`` in chunks of :data:`CHUNK` rows per table (bounded memory)."""
    path = sqlite_path(url)
    if path is not None:
        _add_sqlite(str(path), batch)
    else:
        await _add_postgres(url, batch)


def _chunks(batch: Batch) -> Iterator[Batch]:
    for start in range(batch.first, batch.first + batch.count, CHUNK):
        end = min(batch.first + batch.count, start + CHUNK)
        yield Batch(start, end - start, batch.version_id, batch.now, batch.due_at)


def _add_sqlite(path: str, batch: Batch) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for chunk in _chunks(batch):
            conn.execute("BEGIN IMMEDIATE")
            for table, columns in TABLES.items():
                marks = ", ".join("?" * len(columns))
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    ([_utc_text(v) for v in row] for row in chunk.rows(table)),
                )
            conn.execute("COMMIT")
    finally:
        conn.close()


def _utc_text(value: Any) -> Any:
    """Datetimes as :class:`store.models.base.UTCDateTime` stores them on SQLite."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


async def _add_postgres(url: str, batch: Batch) -> None:
    import asyncpg

    dsn = normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        for chunk in _chunks(batch):
            async with conn.transaction():
                for table, columns in TABLES.items():
                    await conn.copy_records_to_table(
                        table, records=list(chunk.rows(table)), columns=list(columns)
                    )
        for table in ("customers", "customer_staff", "enrollments"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
    finally:
        await conn.close()
