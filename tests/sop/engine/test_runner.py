"""The engine loop stopping gracefully: the claim in flight commits, no other is taken, and the
rows it did not claim are pending for another engine at once (nothing to wait out)."""

from __future__ import annotations

import asyncio

from sop.engine.catalog import Catalog
from sop.engine.runner import Engine
from sop.rendering import Renderer
from sop.settings import SopSettings
from store.models import AgendaState
from tests.sop.engine.harness import ZONE, Harness
from tests.support.clock import ManualClock
from tests.support.database import Database


async def test_a_stopping_engine_finishes_its_claim_and_takes_no_other(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock, SopSettings(batch_size=2))
    await h.playbook("many", steps=[{"tag": "a"}])
    enrollments = [await h.enroll("many", await h.customer(f"wm{n}")) for n in range(5)]
    stopping = asyncio.Event()

    def catalog() -> Catalog:
        stopping.set()  # SIGTERM arrives while the first claim runs
        return h.catalog

    engine = Engine(db.sessions, catalog, Renderer(), clock, h.settings, ZONE)
    await engine.run_forever(asyncio.Event(), stopping)

    states = [(await h.agenda(e))[0].state for e in enrollments]
    assert sorted(states) == [AgendaState.DONE] * 2 + [AgendaState.PENDING] * 3
    assert await h.run() == 3  # another engine takes the rest at once
    assert [(await h.agenda(e))[0].state for e in enrollments] == [AgendaState.DONE] * 5
