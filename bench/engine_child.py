"""The measuring side of ``bench.engine``, run in a fresh process per measurement so each
peak RSS is the engine's own at that database size (``python -m bench.engine --child ...``).

``tick``: ``ticks`` + 1 passes of :meth:`Engine.run_once` with ``few`` enrollments made due
before each (the first pass warms caches and is not counted), then ``ticks`` passes with
nothing due. ``drain``: ``run_once`` until nothing is due (the parent made the rows due),
each transaction timed (a step's latency is its transaction's). ``naive``: ``few``
enrollments from ``first`` through APScheduler, a job per step (:mod:`bench.engine_naive`).
Each prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import run
from bench.engine_fill import BENCH_PLAYBOOK, STEPS_PER_ENROLLMENT, Batch, add, bench_playbook
from bench.engine_naive import measure as measure_naive
from bench.engine_timing import Timing, peak_rss_mib
from sop.clock import SystemClock
from sop.engine.catalog import Catalog, register
from sop.engine.runner import Engine
from sop.rendering import Renderer
from sop.settings import SopSettings
from store.db import create_engine, session_factory

ZONE = "Asia/Shanghai"


class TimedEngine(Engine):
    """The real engine, with each transaction timed (bench only): a step's latency is its
    transaction's, from begin to commit."""

    timing: Timing

    async def _transaction(
        self,
        claimed: list[int],
        *,
        only: Sequence[int] | None = None,
        release_lapsed: bool = False,
    ) -> int | None:
        started = time.perf_counter()
        ran = await super()._transaction(claimed, only=only, release_lapsed=release_lapsed)
        elapsed = time.perf_counter() - started
        for _ in range(ran or 0):
            self.timing.note(elapsed)
        return ran


async def _catalog(sessions: async_sessionmaker[AsyncSession]) -> Catalog:
    async with sessions.begin() as session:
        playbook = bench_playbook()
        return await register(session, {playbook.name: playbook}, now=SystemClock().now())


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def _measure(
    kind: str, url: str, *, first: int, few: int, ticks: int, batch: int
) -> dict[str, Any]:
    engine = create_engine(url)
    clock = SystemClock()
    try:
        sessions = session_factory(engine)
        catalog = await _catalog(sessions)
        runner = TimedEngine(
            sessions, lambda: catalog, Renderer(), clock, SopSettings(batch_size=batch), ZONE
        )
        runner.timing = Timing()
        version = catalog.latest(BENCH_PLAYBOOK).version_id
        if kind == "drain":
            started, steps = time.perf_counter(), 0
            while executed := await runner.run_once():
                steps += executed
            seconds = time.perf_counter() - started
            timing = runner.timing
            return {
                "steps": steps, "seconds": seconds, "rate": steps / seconds if seconds else 0.0,
                "p50": timing.percentile(0.5) * 1000, "p99": timing.percentile(0.99) * 1000,
                "rss": peak_rss_mib(),
            }  # fmt: skip
        busy, idle, steps = [], [], 0
        for tick in range(ticks + 1):
            await add(url, Batch(first + tick * few, few, version, clock.now(), clock.now()))
            started = time.perf_counter()
            steps = await runner.run_once()
            if tick:
                busy.append(time.perf_counter() - started)
        for _ in range(ticks):
            started = time.perf_counter()
            await runner.run_once()
            idle.append(time.perf_counter() - started)
        return {
            "few_p50": statistics.median(busy) * 1000, "few_p99": _ms(busy, 0.99),
            "idle_p50": statistics.median(idle) * 1000, "steps": steps, "rss": peak_rss_mib(),
        }  # fmt: skip
    finally:
        await engine.dispose()


def main(kind: str, url: str, *, first: int, few: int, ticks: int, batch: int) -> None:
    if kind == "naive":  # ``few`` is the number of enrollments there
        result = measure_naive(url, first=first, count=few, steps=few * STEPS_PER_ENROLLMENT)
    else:
        result = run(_measure(kind, url, first=first, few=few, ticks=ticks, batch=batch))
    print(json.dumps(result), flush=True)
