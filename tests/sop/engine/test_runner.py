"""The engine loop stopping gracefully: the row it is running finishes, the rest of its claim
goes back to the agenda at once (not when the lease lapses), and another engine runs them."""

from __future__ import annotations

import asyncio

from sop.engine.catalog import Catalog
from sop.engine.runner import Engine
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
