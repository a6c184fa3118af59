"""How a step's own writes reach the database: its trace, its row closed, the enrollment's
``seq``/``waiting`` and the next agenda row, gathered over the steps of a transaction and
written as one prebuilt Core statement per kind of write, with the same effects as one
step at a time on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from sop.delivery.outbox import enqueue
from store.models import AgendaKind, AgendaState, EnrollmentState, Waiting
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database

MORNING = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


@pytest.fixture
def h(db: Database, clock: ManualClock) -> Harness:
    clock.set(MORNING)
    return Harness(db, clock)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL each cursor runs while the block runs."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])

    target = db.engine.sync_engine
    event.listen(target, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", note)


async def test_waiting_steps_write_their_traces_rows_enrollments_and_timeouts(
    h: Harness,
) -> None:
    await h.playbook("w", steps=[{"id": "wait", "wait_for_reply": {"timeout": "2d"}}])
    enrollment = await h.enroll("w", await h.customer())
    for n in range(2, 5):
        await h.enroll("w", await h.customer(f"wm{n}"))

    with statements(h.db) as seen:
        assert await h.run() == 4

    # Claimed, taken back and written in one transaction, one statement per kind of write;
    # on PostgreSQL a step's four writes are one statement (data-modifying CTEs).
    writes = [s for s in seen if s.startswith(("INSERT", "UPDATE", "WITH closed"))]
    released = "UPDATE agenda SET state="  # rows an earlier release left running, once a pass
    assert writes[0].startswith(released), writes
    if h.db.backend == "postgres":
        assert len(writes) == 2, writes
        for write in ("UPDATE agenda", "INSERT INTO step_runs", "UPDATE enrollments"):
            assert write in writes[1]
        assert "INSERT INTO agenda" in writes[1].split("bumped AS")[-1]  # the outer one
    else:
        assert [w.split("(")[0].split(" SET")[0].strip() for w in writes[1:]] == [
            "INSERT INTO step_runs",  # the four traces
            "UPDATE agenda",  # the four rows closed
            "UPDATE enrollments",  # the four enrollments' seq and waiting
            "INSERT INTO agenda",  # the four timeout rows
        ], writes
    assert not [s for s in seen if "RETURNING" in s and "outbox" not in s]
    state = await h.enrollment(enrollment)
    assert (state.waiting, state.seq, state.state) == (Waiting.REPLY, 2, EnrollmentState.ACTIVE)
    rows = await h.agenda(enrollment)
    assert [(r.seq, r.kind, r.state) for r in rows] == [
        (1, AgendaKind.STEP, AgendaState.DONE),
        (2, AgendaKind.REPLY_TIMEOUT, AgendaState.PENDING),
    ]
    assert rows[0].lease_until is None
    assert rows[1].due_at == h.clock.now() + timedelta(days=2)
    assert await h.outcomes(enrollment) == [("wait", "waiting")]


async def test_the_timeout_moves_on_and_the_last_step_completes(h: Harness) -> None:
    await h.playbook(
        "w",
        steps=[{"id": "wait", "wait_for_reply": {"timeout": "1h"}}, {"id": "mark", "tag": "x"}],
    )
    enrollment = await h.enroll("w", await h.customer())
    await h.run()
    h.clock.advance(timedelta(hours=1))

    assert await h.run() == 2  # the timeout, then the tag due at once

    done = await h.enrollment(enrollment)
    assert (done.state, done.waiting) == (EnrollmentState.COMPLETED, Waiting.NONE)
    assert done.end_reason == "ran past the last step (mark)"
    assert done.seq == 3
    rows = await h.agenda(enrollment)
    assert [(r.seq, r.state) for r in rows] == [(n, AgendaState.DONE) for n in (1, 2, 3)]
    assert await h.outcomes(enrollment) == [
        ("wait", "waiting"),
        ("wait", "timeout"),
        ("mark", "done"),
    ]


async def test_an_outbox_key_taken_already_keeps_its_row_and_the_trace_says_so(
    h: Harness,
) -> None:
    await h.playbook("t", steps=[{"tag": "x"}])
    enrollment = await h.enroll("t", await h.customer())
    async with h.db.sessions.begin() as session:
        key = f"enrollment:{enrollment}:seq:1"
        await enqueue(
            session, key=key, channel="wecom_tag", recipient="wm1", payload={}, due_at=MORNING
        )

    assert await h.run() == 1

    [row] = await h.outbox()
    assert row.payload == {}  # the row that was there
    [trace] = await h.runs(enrollment)
    assert (trace.outcome, trace.detail["duplicate"]) == ("done", True)
