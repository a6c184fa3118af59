"""Engine benchmark: a million enrollments on the agenda, a few due; what a tick costs.

Run ``python -m bench.engine`` (options: ``--help``; a smoke run: ``--total 20000 --due
2000``). For each database (a SQLite file under a temporary folder, and PostgreSQL when it
answers at 127.0.0.1:5432, in a scratch database created and dropped here) it writes
synthetic enrollments of the bench playbook (``tag``, a mass ``send`` rendered from the
customer's context, a two-day ``wait_for_reply``) with raw bulk inserts
(:mod:`bench.engine_fill`), their first step due over the next 30 days, in sizes 10k, 100k,
1M up to ``--total``. At each size a fresh child process runs the real
:class:`~sop.engine.runner.Engine` on the real clock for ``--ticks`` ticks with ``--few``
enrollments due (each runs its three due steps) and as many ticks with nothing due, and
prints the tick's cost and its own peak RSS: neither may grow with the total (the claim
reads ordered index ranges that stop at the batch; its plans are printed). At the full size
``--due`` enrollments fall due at once and another child drains them with ``run_once``:
steps per second and p50/p99 of a step's transaction. Then, on as many due rows each:

- the floor, the engine's writes in lean raw SQL committed as the engine commits them
  (:func:`bench.engine_floor.run_floor`); the ratio engine / floor says what the engine's
  Python (and its reads) costs;
- for reference, the same writes committed one step at a time (what batching saves);
- the naive way, a job per step in APScheduler's ``SQLAlchemyJobStore`` on the same
  database (:mod:`bench.engine_naive`), and how many times faster the engine is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from bench.common import postgres_available, run, scratch_postgres
from bench.engine_child import main as child_main
from bench.engine_fill import STEPS_PER_ENROLLMENT, Batch, add, prepare
from bench.engine_floor import run_floor, run_floor_alone
from bench.engine_timing import peak_rss_mib
from sop.clock import SystemClock
from sop.engine.agenda import CLAIM, FRESH
from store.db import normalize_url, sqlite_path

LADDER = (10_000, 100_000, 1_000_000)


@dataclass(frozen=True)
class Plan:
    total: int
    due: int
    few: int
    ticks: int
    batch: int


def sizes(total: int) -> list[int]:
    return [size for size in LADDER if size < total] + [total]


def child(kind: str, url: str, plan: Plan, first: int) -> dict[str, Any]:
    """Run ``bench.engine_child`` in a fresh process; the JSON it printed last."""
    command = [
        sys.executable, "-m", "bench.engine", "--child", kind, "--url", url, "--first",
        str(first), "--few", str(plan.few), "--ticks", str(plan.ticks), "--batch",
        str(plan.batch),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench child {kind} failed ({done.returncode}):\n{done.stderr}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def explain(url: str, batch: int) -> str:
    """The claim's plan at the current size (PostgreSQL: with its real timing, rolled
    back)."""
    now = SystemClock().now()
    params = {"now": now, "fresh_since": now - FRESH, "lane": (batch + 1) // 2, "limit": batch}
    path = sqlite_path(url)
    if path is None:
        return run(_explain_postgres(url, params))
    import sqlite3

    conn = sqlite3.connect(str(path))
    try:
        sql, args = _positional(CLAIM[False], sqlite_dialect(), params)
        args = [a.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                if isinstance(a, datetime) else a for a in args]  # fmt: skip
        return "\n".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    finally:
        conn.close()


def _positional(statement: Any, dialect: Any, params: dict[str, Any]) -> tuple[str, list[Any]]:
    compiled = statement.compile(dialect=dialect)
    names = compiled.positiontup or []
    values = [params.get(n, compiled.binds[n].value) for n in names]
    return compiled.string, values


async def _explain_postgres(url: str, params: dict[str, Any]) -> str:
    import asyncpg

    dsn = normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        dialect = asyncpg_dialect()  # type: ignore[no-untyped-call]
        sql, args = _positional(CLAIM[True], dialect, params)
        async with conn.transaction():
            rows = await conn.fetch("EXPLAIN ANALYZE " + sql, *args)
            plan = "\n".join(row[0] for row in rows)
            raise _RollBack(plan)
    except _RollBack as done:
        return str(done)
    finally:
        await conn.close()


class _RollBack(Exception):
    """Leaves the explained claim's transaction without committing its locks."""


async def _analyze(url: str) -> None:
    """PostgreSQL: refresh the planner's statistics after a bulk load, as autovacuum would."""
    if sqlite_path(url) is not None:
        return
    import asyncpg

    dsn = normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def bench_backend(label: str, url: str, plan: Plan) -> None:
    now = SystemClock().now()
    version = run(prepare(url, now))
    filled, next_id = 0, 10 * max(plan.total, 1_000_000)  # due rows' ids above the future ones
    print(f"{label}: tick = one Engine.run_once; {plan.few} due enrollments x 3 steps each")
    print(f"{'total':>10} {'fill s':>8} {'tick ms p50':>12} {'p99':>8} {'steps':>6}"
          f" {'idle tick ms':>13} {'child peak RSS MiB':>19}")  # fmt: skip
    for size in sizes(plan.total):
        started = time.perf_counter()
        run(add(url, Batch(filled + 1, size - filled, version, now)))
        run(_analyze(url))
        fill_seconds, filled = time.perf_counter() - started, size
        tick = child("tick", url, plan, next_id)
        next_id += plan.few * (plan.ticks + 1)
        print(f"{size:>10} {fill_seconds:>8.1f} {tick['few_p50']:>12.2f} {tick['few_p99']:>8.2f}"
              f" {tick['steps']:>6} {tick['idle_p50']:>13.2f} {tick['rss']:>19.0f}")  # fmt: skip
    print(f"{label}: the claim's plan at {filled} enrollments:")
    print("    " + explain(url, plan.batch).replace("\n", "\n    "))

    due_at = SystemClock().now() - timedelta(seconds=1)
    expected = plan.due * STEPS_PER_ENROLLMENT
    print(f"{label}: {plan.due} enrollments due at once ({expected} steps) among {filled},"
          f" batch {plan.batch}; a step's latency is its transaction's:")  # fmt: skip
    run(add(url, Batch(next_id, plan.due, version, now, due_at=due_at)))
    drained = child("drain", url, plan, next_id)
    next_id += plan.due
    print(f"  {'engine (run_once)':<34} {drained['steps']:>7} steps in {drained['seconds']:7.2f}"
          f" s = {drained['rate']:7.0f}/s   step p50 {drained['p50']:6.2f} ms"
          f"  p99 {drained['p99']:6.2f} ms   child peak RSS {drained['rss']:.0f} MiB")  # fmt: skip
    floors = []
    for name, floor_run in (("floor: raw SQL, committed alike", run_floor),
                            ("raw SQL, a transaction per step", run_floor_alone)):  # fmt: skip
        run(add(url, Batch(next_id, plan.due, version, now, due_at=due_at)))
        next_id += plan.due
        floors.append(timing := run(floor_run(url, batch=plan.batch)))
        print("  " + timing.line(name, width=34))
    floor = floors[0]
    ratio = drained["rate"] / floor.rate if floor.rate else 0.0
    print(f"  ratio engine/floor {ratio:.2f}   (the floor: the engine's writes in raw SQL,"
          " sent and committed as the engine does, none of its reads;"
          " bench/engine_floor.py)")  # fmt: skip
    run(add(url, Batch(next_id, plan.due, version, now)))  # agenda rows a month away
    naive = child("naive", url, replace(plan, few=plan.due), next_id)
    next_id += plan.due
    print(f"  {'APScheduler, a job per step':<34} {naive['steps']:>7} steps in"
          f" {naive['seconds']:7.2f} s = {naive['rate']:7.0f}/s   {naive['workers']} threads,"
          f" SQLAlchemyJobStore   child peak RSS {naive['rss']:.0f} MiB")  # fmt: skip
    times = drained["rate"] / naive["rate"] if naive["rate"] else 0.0
    print(f"  engine/APScheduler {times:.1f}x   (every scheduler pass reads and unpickles all"
          " due jobs; each step is three commits: its writes, its job deleted, the next job"
          " inserted; bench/engine_naive.py)")  # fmt: skip
    for name, steps in (("engine", drained["steps"]), ("floor", floor.done),
                        ("naive", naive["steps"])):  # fmt: skip
        if steps != expected:
            print(f"  WARNING: the {name} ran {steps} steps, expected {expected}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--total", type=int, default=1_000_000, help="enrollments in the db")
    parser.add_argument("--due", type=int, default=20_000, help="enrollments due at once")
    parser.add_argument("--few", type=int, default=10, help="enrollments due per tick")
    parser.add_argument("--ticks", type=int, default=20, help="ticks timed per size")
    parser.add_argument("--batch", type=int, default=100, help="rows claimed at once")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--child", choices=["tick", "drain", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    plan = Plan(args.total, args.due, args.few, args.ticks, args.batch)
    if args.child:
        child_main(args.child, args.url, first=args.first, few=plan.few, ticks=plan.ticks,
                   batch=plan.batch)  # fmt: skip
        return
    if not 1_000 <= plan.total <= 5_000_000:
        parser.error(f"--total must be between 1000 and 5000000, got {plan.total}")
    if not 1 <= plan.due <= 200_000 or not 1 <= plan.few <= 1_000 or not 1 <= plan.ticks <= 500:
        parser.error("--due must be 1-200000, --few 1-1000, --ticks 1-500")
    print(f"{plan.total} enrollments, {plan.due} due at once, ticks of {plan.few} due")
    if args.backend in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as folder:
            bench_backend("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}", plan)
    if args.backend in ("postgres", "all"):
        problem = postgres_available()
        if problem:
            print(f"postgres skipped: not reachable at 127.0.0.1:5432 ({problem})")
        else:
            with scratch_postgres("scrm_bench_engine") as url:
                bench_backend("postgres", url, plan)
    print(f"this process (bulk fill, floor) peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
