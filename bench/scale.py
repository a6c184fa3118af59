"""Scale-out benchmark: what 1, 2 and 4 ``scrm serve`` processes do on one PostgreSQL database.

Run ``python -m bench.scale`` (options: ``--help``). For each process count, in a scratch
database created and dropped here:

- **accepting**: that many ``scrm serve --role web`` processes answer ``--callbacks`` distinct
  signed callbacks, sent over ``--connections`` keep-alive connections spread over them (the
  lean driver of ``bench.ingest``); accepted callbacks/s, p99, and the servers' CPU time per
  callback (their ``/proc`` times, summed);
- **running steps**: ``--due`` enrollments of the engine bench's playbook (``bench.engine_fill``:
  tag, a mass message rendered from the customer's context, a two-day wait) fall due at once
  while that many ``scrm serve --role worker`` processes run; steps/s until every one has run
  its steps, and the workers' CPU time per step.

On a 2-core machine the curve flattens at two processes (the driver and PostgreSQL share the
cores); the CPU per callback and per step is what to read off for a bigger machine: a core
does about 1e6 / (CPU µs per item) items a second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import yaml
from sqlalchemy import func, select

from bench.common import postgres_available, run, scratch_postgres
from bench.engine_fill import Batch, add, bench_playbook, prepare
from bench.engine_timing import percentile
from bench.ingest_driver import DriveResult, drive
from bench.ingest_traffic import APP, CORP_ID, MP, make_traffic
from bot.callback.samples import SignedRequest
from sop.engine.catalog import definition_of
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import StepRun
from tests.support.cluster import ServeProcess, write_config

STEPS_PER_ENROLLMENT = 3
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (from ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass(frozen=True)
class AcceptResult:
    processes: int
    sent: int  # the warm-up's requests included: the CPU is measured over all of them
    accepted: int
    failed: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / max(1, self.sent) * 1e6


def web_config(folder: Path, url: str) -> Path:
    """The ingest bench's corp (its WeCom app and Official Account), served by web processes."""
    config = {"database_url": url, "wecom": {"corp_id": CORP_ID, "apps": [APP]}, "mp": [MP]}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def measure_accept(
    url: str, processes: int, requests: list[SignedRequest], connections: int, folder: Path
) -> AcceptResult:
    """``processes`` web processes answer ``requests``, spread over them."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    config = web_config(folder, url)
    servers = [
        ServeProcess(f"web{i}", "web", config, folder / f"web{i}.log") for i in range(processes)
    ]
    async with aiohttp.ClientSession() as http:
        try:
            for server in servers:
                server.start()
            await asyncio.gather(*(s.ready(http) for s in servers))
            cpu_before = sum(cpu_seconds(s.pid) for s in servers)
            shares = [requests[i::processes] for i in range(processes)]
            per_server = max(1, connections // processes)
            results: list[DriveResult] = await asyncio.gather(
                *(
                    drive(s.port, share, per_server)
                    for s, share in zip(servers, shares, strict=True)
                )
            )
            cpu = sum(cpu_seconds(s.pid) for s in servers) - cpu_before
        finally:
            await asyncio.gather(*(s.stop() for s in servers))
    return AcceptResult(
        processes,
        len(requests),
        sum(r.accepted for r in results),
        sum(r.failed for r in results),
        max(r.seconds for r in results),
        [latency for r in results for latency in r.latencies],
        cpu,
    )


@dataclass(frozen=True)
class StepsResult:
    processes: int
    steps: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.steps / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / max(1, self.steps) * 1e6


async def _steps_run(url: str) -> int:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(StepRun)) or 0)
    finally:
        await engine.dispose()


async def measure_steps(url: str, processes: int, due: int, folder: Path) -> StepsResult:
    now = datetime.now(UTC)
    version = await prepare(url, now)
    playbooks = folder / "playbooks"
    playbooks.mkdir()
    (playbooks / "bench.yaml").write_text(
        yaml.safe_dump(definition_of(bench_playbook()), allow_unicode=True), encoding="utf-8"
    )
    config = write_config(  # no secret: no sender, the workers run steps only
        folder,
        database_url=url,
        corp_id="ww0benchscale",
        api_base_url="http://127.0.0.1:9",
        playbooks=playbooks,
        with_secret=False,
    )
    workers = [
        ServeProcess(f"worker{i}", "worker", config, folder / f"worker{i}.log")
        for i in range(processes)
    ]
    async with aiohttp.ClientSession() as http:
        try:
            for worker in workers:
                worker.start()
            await asyncio.gather(*(w.ready(http) for w in workers))
            cpu_before = sum(cpu_seconds(w.pid) for w in workers)
            await add(url, Batch(1, due, version, now, due_at=now))  # due once committed
            started = time.perf_counter()
            wanted = due * STEPS_PER_ENROLLMENT
            done = 0
            deadline = time.monotonic() + 600
            while done < wanted and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                done = await _steps_run(url)
            seconds = time.perf_counter() - started
            cpu = sum(cpu_seconds(w.pid) for w in workers) - cpu_before
        finally:
            await asyncio.gather(*(w.stop() for w in workers))
    return StepsResult(processes, done, seconds, cpu)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--due", type=int, default=10_000, help="enrollments due at once")
    parser.add_argument("--processes", default="1,2,4", help="process counts to measure")
    args = parser.parse_args(argv)
    problem = postgres_available()
    if problem is not None:
        print(f"skipped: PostgreSQL not reachable at 127.0.0.1:5432 ({problem})")
        return
    counts = [int(n) for n in args.processes.split(",")]
    requests = make_traffic(args.callbacks).requests
    print(
        f"accepting: {args.callbacks} distinct callbacks over {args.connections} connections"
        " to scrm serve --role web processes"
    )
    for processes in counts:
        with (
            scratch_postgres("scrm_bench_scale") as url,
            tempfile.TemporaryDirectory(prefix="scrm-scale-") as folder,
        ):
            accepted = run(
                measure_accept(url, processes, requests, args.connections, Path(folder))
            )
        print(
            f"{processes} web process{'es' if processes > 1 else '  '}  "
            f"{accepted.accepted} accepted ({accepted.failed} refused) in "
            f"{accepted.seconds:.1f} s: {accepted.rate:,.0f} callbacks/s, "
            f"p99 {percentile(accepted.latencies, 0.99) * 1000:.1f} ms, "
            f"CPU {accepted.cpu_us:.0f} µs a callback",
            flush=True,
        )
    print(
        f"running steps: {args.due} enrollments due at once "
        f"({args.due * STEPS_PER_ENROLLMENT} steps) for scrm serve --role worker processes"
    )
    for processes in counts:
        with (
            scratch_postgres("scrm_bench_scale") as url,
            tempfile.TemporaryDirectory(prefix="scrm-scale-") as folder,
        ):
            result = run(measure_steps(url, processes, args.due, Path(folder)))
        print(
            f"{processes} worker{'s' if processes > 1 else ' '}  {result.steps} steps in "
            f"{result.seconds:.1f} s: {result.rate:,.0f} steps/s, "
            f"CPU {result.cpu_us:.0f} µs a step",
            flush=True,
        )


if __name__ == "__main__":
    main()
