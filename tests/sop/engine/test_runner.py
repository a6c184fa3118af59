"""The engine loop stopping gracefully: the row it is running finishes, the rest of its claim
goes back to the agenda at once (not when the lease lapses), and another engine runs them."""

from __future__ import annotations

import asyncio

import pytest

from sop.engine import executor
from sop.engine.catalog import Catalog
from sop.engine.runner import Engine
from sop.engine.steps.base import StepContext, StepResult
from sop.engine.steps.registry import STEPS
from sop.rendering import Renderer
from store.models import AgendaState
from tests.sop.engine.harness import ZONE, Harness
from tests.support.clock import ManualClock
from tests.support.database import Database


async def test_a_stopping_engine_gives_back_the_rows_it_claimed_but_did_not_run(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook("many", steps=[{"tag": "a"}])
    enrollments = [await h.enroll("many", await h.customer(f"wm{n}")) for n in range(5)]
    stopping = asyncio.Event()

    def catalog() -> Catalog:
        stopping.set()  # SIGTERM arrives while the first claimed row runs
        return h.catalog

    engine = Engine(db.sessions, catalog, Renderer(), clock, h.settings, ZONE)
    await engine.run_forever(asyncio.Event(), stopping)

    rows = [(await h.agenda(e))[0] for e in enrollments]
    assert [(r.state, r.attempts, r.lease_until) for r in rows] == [
        (AgendaState.DONE, 1, None),
        *[(AgendaState.PENDING, 0, None)] * 4,
    ]
    assert await h.run() == 4  # another engine takes them at once, no lease to wait out
    assert [(await h.agenda(e))[0].state for e in enrollments] == [AgendaState.DONE] * 5


async def test_a_transient_database_error_reruns_the_step_at_once_without_a_failed_attempt(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(db, clock)
    await h.playbook("hiccup", steps=[{"tag": "x"}])
    enrollment = await h.enroll("hiccup", await h.customer())
    original, calls = STEPS["tag"], 0

    async def once_lost(run: StepContext) -> StepResult:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("connection lost")  # its transaction rolled back
        return await original(run)

    monkeypatch.setattr(executor, "STEPS", {**STEPS, "tag": once_lost})
    assert await h.run() == 1
    row = (await h.agenda(enrollment))[0]
    assert (row.state, row.attempts, row.last_error) == (AgendaState.DONE, 1, None)
    assert await h.outcomes(enrollment) == [("1", "done")]  # no "error" trace for a blip
    assert len(await h.outbox()) == 1
