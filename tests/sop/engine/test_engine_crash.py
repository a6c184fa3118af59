"""An engine killed with SIGKILL mid-run and restarted loses no step and runs none twice.

The engine runs in a process of its own (:mod:`tests.support.engine_process`) on the real
clock; each claim runs its rows in one transaction, so the kill lands inside one (the engine
is in a transaction nearly all the time it works): what that transaction did is gone, rows
and effects alike, and its rows are due again at once for the second process. The proof is
in the tables: at the kill, effects match the traces exactly (no half transaction); at the
end, one trace per (enrollment, seq), every effect exactly once, every enrollment done.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sop.clock import SystemClock
from sop.engine.catalog import register
from sop.engine.enroll import enroll
from store.db import sqlite_path
from store.models import (
    AgendaItem,
    AgendaState,
    Enrollment,
    EnrollmentState,
    MarketingTouch,
    OutboxRow,
    StepRun,
    Task,
)
from tests.support.database import Database
from tests.support.engine_factories import add_customer, add_staff
from tests.support.engine_process import (
    CRASH_PLAYBOOK,
    CRASH_STEPS,
    ZONE,
    crash_playbook,
    settings,
)

ROOT = Path(__file__).resolve().parents[3]
ENROLLMENTS, STAFF = 400, 20
STEPS = ENROLLMENTS * len(CRASH_STEPS)
#: Rows per claim (one transaction); the kill comes after two of them committed.
BATCH = 100
KILL_AFTER = 2 * BATCH
OPEN_STATES = (AgendaState.PENDING, AgendaState.RUNNING)
pytestmark = pytest.mark.slow


async def _seed(db: Database) -> None:
    now = SystemClock().now()
    async with db.sessions.begin() as session:
        playbook = crash_playbook()
        catalog = await register(session, {playbook.name: playbook}, now=now)
        for m in range(STAFF):
            await add_staff(session, f"staff{m}", now=now)
        for i in range(ENROLLMENTS):
            customer = await add_customer(
                session, f"wmCrash{i}", now=now, owner=f"staff{i % STAFF}", name=f"客户{i}"
            )
            result = await enroll(
                session,
                catalog=catalog,
                playbook_name=CRASH_PLAYBOOK,
                customer_id=customer.id,
                key=f"crash:{i}",
                now=now,
                settings=settings(BATCH),
                zone_default=ZONE,
            )
            assert result.enrollment is not None, (result.skip, result.detail)


async def _start(db: Database, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.engine_process",
            db.url,
            str(BATCH),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )


async def _count(db: Database, query: object) -> int:
    """``query``'s count. On SQLite through a plain reader: the toolkit's sessions begin
    ``IMMEDIATE`` (a write lock), which the engine, committing transaction after
    transaction, would rarely leave free for a poll from another process."""
    path = sqlite_path(db.url)
    if path is None:
        async with db.sessions() as session:
            return int(await session.scalar(query) or 0)  # type: ignore[call-overload]
    sql = str(query.compile(compile_kwargs={"literal_binds": True}))  # type: ignore[attr-defined]
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute(sql).fetchone()[0] or 0)


async def _effects(db: Database) -> dict[str, int]:
    """What the committed transactions left: traces by action, and the effects."""
    counts = {
        action: await _count(
            db, select(func.count()).select_from(StepRun).where(StepRun.action == action)
        )
        for action in CRASH_STEPS
    }
    for name, model in (("outbox", OutboxRow), ("tasks", Task), ("touches", MarketingTouch)):
        counts[name] = await _count(db, select(func.count()).select_from(model))
    return counts


def _expected(ran: int, traced: dict[str, int]) -> dict[str, int]:
    """The effects ``traced`` steps make: an outbox row each (tag row, nudge card, mass
    message), a task per nudge, a touch per send."""
    assert sum(traced[action] for action in CRASH_STEPS) == ran
    return {
        **{action: traced[action] for action in CRASH_STEPS},
        "outbox": ran,
        "tasks": traced["nudge"],
        "touches": traced["send"],
    }


def _step_runs() -> object:
    return select(func.count()).select_from(StepRun)


def _open_rows() -> object:
    return select(func.count()).where(AgendaItem.state.in_(OPEN_STATES))


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _wait_for(db: Database, query: object, done: int, log: Path, *, seconds: float) -> int:
    """Poll ``query`` until it reaches ``done`` (or falls to it, for a countdown)."""
    value = -1
    for _ in range(int(seconds / 0.02)):
        value = await _count(db, query)
        if value == done or (done > 0 and value >= done):
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"waited {seconds} s for {done}, still {value}; log:\n{_read(log)}")


async def test_kill_9_mid_batch_then_restart(db: Database, tmp_path: Path) -> None:
    log = tmp_path / "engine.log"
    await _seed(db)

    first = await _start(db, log)
    ran_at_kill = await _wait_for(db, _step_runs(), KILL_AFTER, log, seconds=120)
    first.send_signal(signal.SIGKILL)
    assert await first.wait() == -signal.SIGKILL
    ran_at_kill = await _count(db, _step_runs())
    at_kill = await _effects(db)

    second = await _start(db, log)
    try:
        await _wait_for(db, _open_rows(), 0, log, seconds=300)
    finally:
        second.send_signal(signal.SIGTERM)
        assert await second.wait() == 0, _read(log)

    assert 0 < ran_at_kill < STEPS  # the kill came mid-way, and left whole transactions:
    assert at_kill == _expected(ran_at_kill, at_kill), at_kill
    async with db.sessions() as session:
        runs = (await session.scalars(select(StepRun))).all()
        agenda = (await session.scalars(select(AgendaItem))).all()
        enrollments = (await session.scalars(select(Enrollment))).all()
        outbox = (await session.scalars(select(OutboxRow))).all()
        tasks = (await session.scalars(select(Task))).all()
        touches = (await session.scalars(select(MarketingTouch))).all()

    # Every enrollment ran to its end; every execution was traced once, and done.
    assert Counter(e.state for e in enrollments) == {EnrollmentState.COMPLETED: ENROLLMENTS}
    per_execution = Counter((r.enrollment_id, r.seq) for r in runs)
    assert len(per_execution) == STEPS, "a step was lost"
    assert max(per_execution.values()) == 1, "a step ran twice"
    assert Counter(r.outcome for r in runs) == {"done": STEPS}
    assert Counter(r.action for r in runs) == {a: ENROLLMENTS for a in CRASH_STEPS}
    assert Counter(a.state for a in agenda) == {AgendaState.DONE: STEPS}

    # Every effect exactly once, and exactly as many as the steps that create them.
    keys = Counter(row.idempotency_key for row in outbox)
    assert max(keys.values()) == 1
    traced_keys = Counter(str(r.detail["outbox_key"]) for r in runs)
    assert traced_keys == keys
    assert len(outbox) == 3 * ENROLLMENTS  # tag row, nudge card, mass message
    assert not any(r.detail.get("duplicate") for r in runs)
    assert len(tasks) == ENROLLMENTS
    assert Counter(t.key for t in tasks) == Counter(
        f"enrollment:{r.enrollment_id}:seq:{r.seq}" for r in runs if r.action == "nudge"
    )
    assert len(touches) == ENROLLMENTS
