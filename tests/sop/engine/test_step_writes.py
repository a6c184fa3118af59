"""How a step's own writes reach the database: its trace, its row closed, the enrollment's
``seq``/``waiting`` and the next agenda row, written as prebuilt Core statements (one
statement on PostgreSQL), with the same effects as before on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

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


async def test_a_waiting_step_writes_its_trace_row_enrollment_and_timeout(h: Harness) -> None:
    await h.playbook("w", steps=[{"id": "wait", "wait_for_reply": {"timeout": "2d"}}])
    enrollment = await h.enroll("w", await h.customer())

    with statements(h.db) as seen:
        assert await h.run() == 1

    traces = [s for s in seen if "step_runs" in s]
    assert len(traces) == 1, traces
    # PostgreSQL: the trace, the row closed, the enrollment and the timeout row in one go.
    together = "INSERT INTO agenda" in traces[0] and "UPDATE enrollments" in traces[0]
    assert together == (h.db.backend == "postgres"), traces
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
