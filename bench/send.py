"""Send benchmark: outbox rows through the sender to the fake WeCom API, against the raw floor.

Run ``python -m bench.send`` (options: ``--help``). The fake WeCom API server runs in a child
process on loopback, with the members' delivery limits off. For each database (a SQLite file
under a temporary folder, and PostgreSQL when it answers at 127.0.0.1:5432, in a scratch
database created and dropped here) it enqueues N staff app messages, drains them with the
real :class:`~sop.delivery.Sender` (rate limits off, ``--concurrency`` sends at a time) and the
real :class:`~bot.channels.AppMessageChannel`, and prints rows sent/s, p50/p99 per-row send
latency and this process's peak RSS. In the same run it measures the floor: the same
``message/send`` calls made directly with aiohttp at the same concurrency, and prints the
ratio sender / floor (goal: >= 0.7), and the CPU time this process spent per row on each
(the steadier figure when other work shares the machine). Everything is bounded by ``--rows``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from bench.common import postgres_available, run, scratch_postgres
from bench.engine_timing import peak_rss_mib, percentile
from bot.channels import AppMessageChannel
from bot.wecom import WecomClient
from sop.clock import SystemClock
from sop.delivery import (
    OutboxMessage,
    RateKey,
    RateLimits,
    Sender,
    SenderSettings,
    SendResult,
    enqueue,
)
from sop.delivery.messages import text
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import OutboxRow, OutboxState

AGENT_ID = 1000002


def staff_ids(count: int) -> list[str]:
    return [f"bench{n:04d}" for n in range(count)]


# -- the fake server process ------------------------------------------------------------------


async def serve_fake(staff: int) -> None:
    """Run the fake WeCom API until stdin closes; print its base URL, then its call count."""
    from tests.support.fake_wecom import running_fake_wecom

    async with running_fake_wecom() as fake:
        fake.outbound.member_limits = ()
        for userid in staff_ids(staff):
            fake.add_staff(userid)
        print(fake.base_url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(len(fake.calls_to("message/send")), flush=True)


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Timing:
    seconds: float = 0.0
    #: CPU seconds of this whole process (every thread) over the same span: less noisy than
    #: wall time when the machine is shared.
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    done: int = 0

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_row_us(self) -> float:
        return self.cpu / self.done * 1e6 if self.done else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    def line(self, label: str) -> str:
        return (
            f"{label:<24} {self.done:>6} rows in {self.seconds:6.2f} s = {self.rate:8.0f}/s"
            f"   send p50 {self.percentile(0.5) * 1000:6.1f} ms"
            f"  p99 {self.percentile(0.99) * 1000:6.1f} ms"
        )


class TimedChannel:
    """The real channel, with the duration of every send noted (bench only)."""

    def __init__(self, inner: AppMessageChannel, timing: Timing) -> None:
        self._inner = inner
        self._timing = timing
        self.name = inner.name
        self.customer_facing = inner.customer_facing

    def rate_keys(self, message: OutboxMessage) -> list[RateKey]:
        return self._inner.rate_keys(message)

    def summary(self, message: OutboxMessage) -> str:
        return self._inner.summary(message)

    async def send(self, message: OutboxMessage) -> SendResult:
        started = time.perf_counter()
        try:
            return await self._inner.send(message)
        finally:
            self._timing.latencies.append(time.perf_counter() - started)


# -- the sender -------------------------------------------------------------------------------


async def fill(url: str, rows: int, staff: list[str]) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        now = SystemClock().now()
        for start in range(0, rows, 500):
            async with sessions.begin() as session:
                for n in range(start, min(rows, start + 500)):
                    await enqueue(
                        session,
                        key=f"bench:{n}",
                        channel="wecom_app",
                        recipient=staff[n % len(staff)],
                        payload=text(f"bench message {n}"),
                        due_at=now,
                    )
    finally:
        await engine.dispose()


async def drain(url: str, base_url: str, plan: Plan) -> Timing:
    """Run sender passes until no row is left; the timing of the passes."""
    engine = create_engine(url)
    timing = Timing()
    try:
        sessions = session_factory(engine)
        clock = SystemClock()
        async with aiohttp.ClientSession() as http:
            client = WecomClient(
                base_url=base_url,
                corp_id="ww0000fakecorp0001",
                secret="fake-secret",
                credential="wecom:bench",
                sessions=sessions,
                clock=clock,
                http=http,
            )
            await client.tokens.get()  # the floor fetches its token untimed too
            channel = TimedChannel(AppMessageChannel(client, AGENT_ID), timing)
            settings = SenderSettings(
                batch_size=plan.batch, concurrency=plan.concurrency, limits=RateLimits.unlimited()
            )
            sender = Sender(sessions, [channel], clock, settings, rng=random.Random(1))
            started, cpu = time.perf_counter(), time.process_time()
            await sender.drain()  # what run_forever does each time it wakes
            timing.seconds = time.perf_counter() - started
            timing.cpu = time.process_time() - cpu
        async with sessions() as session:
            query = select(func.count()).where(OutboxRow.state == OutboxState.SENT)
            timing.done = int((await session.execute(query.select_from(OutboxRow))).scalar_one())
    finally:
        await engine.dispose()
    return timing


# -- the floor --------------------------------------------------------------------------------


async def floor(base_url: str, plan: Plan, staff: list[str]) -> Timing:
    """The same message/send calls straight from aiohttp, ``concurrency`` at a time."""
    timing = Timing()
    api = base_url + "/cgi-bin/"
    async with aiohttp.ClientSession() as http:
        query = {"corpid": "ww0000fakecorp0001", "corpsecret": "fake-secret"}
        async with http.get(api + "gettoken", params=query) as response:
            token = (await response.json())["access_token"]
        next_row = iter(range(plan.rows))

        async def worker() -> None:
            for n in next_row:
                body = {
                    **text(f"bench message {n}"),
                    "touser": staff[n % len(staff)],
                    "agentid": AGENT_ID,
                }
                started = time.perf_counter()
                async with http.post(
                    api + "message/send",
                    params={"access_token": token},
                    json=body,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as response:
                    answer = await response.json()
                timing.latencies.append(time.perf_counter() - started)
                if answer.get("errcode") == 0:
                    timing.done += 1

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
        timing.seconds = time.perf_counter() - started
        timing.cpu = time.process_time() - cpu
    return timing


# -- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    rows: int
    concurrency: int
    batch: int
    staff: int


def bench_backend(label: str, url: str, base_url: str, plan: Plan) -> None:
    staff = staff_ids(plan.staff)
    run(fill(url, plan.rows, staff))
    sent = run(drain(url, base_url, plan))
    direct = run(floor(base_url, plan, staff))
    ratio = sent.rate / direct.rate if direct.rate else 0.0
    print(sent.line(f"{label} sender"))
    print(direct.line(f"{label} floor (aiohttp)"))
    print(f"{label:<24} ratio sender/floor {ratio:.2f} (goal >= 0.7)   peak RSS so far"
          f" {peak_rss_mib():.0f} MiB")  # fmt: skip
    print(f"{label:<24} cpu µs/row sender {sent.cpu_per_row_us:.0f} vs floor"
          f" {direct.cpu_per_row_us:.0f}")  # fmt: skip
    if sent.done != plan.rows:
        print(f"{label:<24} WARNING: {plan.rows - sent.done} rows not sent")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.send", description=__doc__)
    parser.add_argument("--rows", type=int, default=3000, help="rows per database")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=200, help="rows claimed per pass")
    parser.add_argument("--staff", type=int, default=100, help="distinct recipients")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake:
        run(serve_fake(args.staff))
        return
    if not 0 < args.rows <= 100_000:
        parser.error(f"--rows must be between 1 and 100000, got {args.rows}")
    plan = Plan(args.rows, args.concurrency, args.batch, args.staff)
    command = [sys.executable, "-m", "bench.send", "--serve-fake", "--staff", str(plan.staff)]
    fake = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert fake.stdin is not None and fake.stdout is not None
    try:
        base_url = fake.stdout.readline().strip()
        if not base_url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"the fake WeCom server did not start (said {base_url!r})")
        print(
            f"{plan.rows} staff app messages per database to {plan.staff} members,"
            f" concurrency {plan.concurrency}, batch {plan.batch}, limits off; fake at {base_url}"
        )
        if args.backend in ("sqlite", "all"):
            with tempfile.TemporaryDirectory() as folder:
                bench_backend("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}", base_url, plan)
        if args.backend in ("postgres", "all"):
            problem = postgres_available()
            if problem:
                print(f"postgres skipped: not reachable at 127.0.0.1:5432 ({problem})")
            else:
                with scratch_postgres("scrm_bench_send") as url:
                    bench_backend("postgres", url, base_url, plan)
    finally:
        fake.stdin.close()
        fake.wait(timeout=30)


if __name__ == "__main__":
    main()
