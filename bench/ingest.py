"""Ingest benchmark: signed callbacks through the real HTTP server, and with ``--full`` through
the whole bot until every one of them is processed.

Run ``python -m bench.ingest`` (options: ``--help``). The traffic is :mod:`bench.ingest_traffic`:
mostly customers added through the expo channel code the example onboarding playbook enrolls,
plus edits, removals, group joins, Official Account messages and staff messages for a few
hundred customers and a few dozen staff. For each database (a SQLite file under a temporary
folder, and PostgreSQL when it answers at 127.0.0.1:5432, in a scratch database created and
dropped here) it starts the server in a separate process, drives it from this process with N
concurrent keep-alive connections over loopback (:mod:`bench.ingest_driver`), and prints:

- answer path only (default): accepted callbacks/s, p50/p99 latency, the server's peak RSS and
  CPU a callback, against the floor of signature check + wechatpy decrypt + parse alone;
- ``--full``: the server is ``bot.server``'s composition with the example playbooks loaded
  (the engine's step execution held unless ``--engine``: ``bench.engine`` measures it), and a
  callback counts once its inbox row is processed: the run ends when no row is pending. It
  prints accepted/s and processed/s end to end, answer p50/p99 while the processor is busy,
  peak RSS and CPU a callback; then, each in a child process of its own
  (:mod:`bench.ingest_process`), inbox processing alone and its floor: the same writes in raw
  SQL, with the ratio toolkit / floor (goal: >= 0.3 on SQLite).

With two or more CPUs ``--pin`` puts the server on one core and the driver on another (off by
default: on a shared machine the scheduler does better). uvloop is used when importable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import web

from bench.common import postgres_available, run, scratch_postgres
from bench.ingest_drain import inbox_counts, wait_drained
from bench.ingest_driver import DriveResult, drive
from bench.ingest_traffic import APP, CORP_ID, MP, Traffic, bench_config, make_traffic
from bot.callback.inbox_writer import InboxWriter
from bot.callback.routes import add_callback_routes
from bot.callback.samples import SignedRequest
from sop.clock import SystemClock
from store.db import create_engine, session_factory
from store.migrate import upgrade


def pin_to_cpu(index: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})


# -- the server process -----------------------------------------------------------------------


async def serve(database_url: str, full: bool, engine_runs: bool) -> None:
    """Run the callback server until stdin closes; then print its stats as JSON.

    ``full`` runs the production composition (``bot.server``: the inbox processor works
    through the callbacks in the same process while they arrive); otherwise only the
    answer path (routes + inbox writer) runs.
    """
    if full:
        from bot.server import build_app, open_runtime

        async with open_runtime(bench_config(database_url)) as runtime:
            if not engine_runs:
                runtime.sop_engine = None  # enrollments are made; their steps wait
            processor = runtime.processor
            await serve_app(
                build_app(runtime),
                runtime.writer,
                lambda: {"processor_batches": processor.batches, "processed": processor.rows},
            )
        return
    engine = create_engine(database_url)
    writer = InboxWriter(session_factory(engine), SystemClock())
    await writer.start()
    app = web.Application()
    add_callback_routes(app, bench_config(database_url), writer)
    await serve_app(app, writer)
    await writer.stop()
    await engine.dispose()


async def serve_app(
    app: web.Application,
    writer: InboxWriter,
    more: Callable[[], dict[str, int]] = dict,
) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    started = resource.getrusage(resource.RUSAGE_SELF)
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = {**asdict(writer.stats), **more()}
    await runner.cleanup()
    cpu = (usage.ru_utime + usage.ru_stime) - (started.ru_utime + started.ru_stime)
    report = {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "serving_cpu_seconds": round(cpu, 3),
        "serving_system_seconds": round(usage.ru_stime - started.ru_stime, 3),
        **stats,
    }
    print(json.dumps(report), flush=True)


# -- the answer path's floor ------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """The floor's wall-clock rate, and its CPU time a callback (steady when cores are shared)."""

    rate: float
    cpu_us: float


def floor_rate(requests: list[SignedRequest], seconds: float = 3.0) -> Floor:
    """Signature check + wechatpy decrypt_message + parse_message alone, in a loop."""
    from wechatpy import parse_message as parse_mp
    from wechatpy.crypto import WeChatCrypto as MpCrypto
    from wechatpy.enterprise import parse_message
    from wechatpy.enterprise.crypto import WeChatCrypto

    crypto = WeChatCrypto(APP["token"], APP["encoding_aes_key"], CORP_ID)
    mp_crypto = MpCrypto(MP["token"], MP["encoding_aes_key"], MP["app_id"])
    done = 0
    started = time.perf_counter()
    cpu_started = time.thread_time()
    deadline = started + seconds
    for request in requests:
        q = request.query
        args = (request.body, q["msg_signature"], q["timestamp"], q["nonce"])
        if request.path.startswith("/mp/"):
            parse_mp(mp_crypto.decrypt_message(*args))
        else:
            parse_message(crypto.decrypt_message(*args))
        done += 1
        if time.perf_counter() > deadline:
            break
    cpu = time.thread_time() - cpu_started
    return Floor(done / (time.perf_counter() - started), cpu / done * 1e6)


# -- databases --------------------------------------------------------------------------------


async def migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


# -- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    traffic: Traffic
    connections: int
    floor: Floor
    pin: bool
    full: bool
    engine: bool

    @property
    def requests(self) -> list[SignedRequest]:
        return self.traffic.requests


@dataclass(frozen=True)
class Served:
    result: DriveResult
    stats: dict[str, float]
    drained_at: float
    backlog: int


def serve_and_drive(url: str, plan: Plan) -> Served:
    """Serve ``url`` from a child process, drive it, wait for the inbox to drain (``full``)."""
    command = [sys.executable, "-m", "bench.ingest", "--serve", url]
    command += ["--full"] if plan.full else []
    command += ["--engine"] if plan.engine else []
    command += ["--pin"] if plan.pin else []
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdin is not None and server.stdout is not None
    drained_at, backlog = 0.0, 0
    try:
        ready = server.stdout.readline().split()
        if ready[:1] != ["READY"]:
            raise RuntimeError(f"server did not start: {ready!r}")
        result = run(drive(int(ready[1]), plan.requests, plan.connections))
        if plan.full:
            drained_at, backlog = run(wait_drained(url))
    finally:
        server.stdin.close()
        stats_line = server.stdout.readline()
        server.wait(timeout=60)
    stats = json.loads(stats_line) if stats_line else {}
    return Served(result, stats, drained_at, backlog)


def bench_backend(label: str, url: str, plan: Plan) -> None:
    """Migrate ``url``, serve it, drive it, print the answer path's (and the whole bot's) lines."""
    run(migrate(url))
    served = serve_and_drive(url, plan)
    result, stats = served.result, served.stats
    rows, _ = run(inbox_counts(url))
    latency = (
        f"p50 {result.percentile(0.5) * 1000:.1f} ms, p99 {result.percentile(0.99) * 1000:.1f} ms"
    )
    cpu_us = stats.get("serving_cpu_seconds", 0.0) / max(rows, 1) * 1e6
    floor = plan.floor
    if not plan.full:
        print(
            f"{label:<10} {result.accepted:>6} accepted ({result.failed} failed, {rows} rows) "
            f"in {result.seconds:.2f} s: {result.rate:,.0f} callbacks/s, {latency}, "
            f"peak RSS {stats.get('peak_rss_mb', '?')} MB, {stats.get('batches', '?')} "
            f"transactions (largest {stats.get('largest_batch', '?')}); "
            f"end-to-end/floor {result.rate / floor.rate:.2f}"
        )
        print(
            f"{'':<10} server CPU {cpu_us:.0f} us a callback (HTTP, crypto, inbox; "
            f"{stats.get('serving_system_seconds', 0) / max(rows, 1) * 1e6:.0f} us of it in the "
            f"kernel) against the floor's {floor.cpu_us:.0f} us: floor/server CPU "
            f"{floor.cpu_us / cpu_us:.2f}"
        )
        return
    processed = rows / (served.drained_at - result.began)
    print(
        f"{label:<10} {rows} callbacks ({result.failed} refused): accepted {result.rate:,.0f}/s "
        f"({latency} while processing), processed {processed:,.0f}/s end to end "
        f"(backlog {served.backlog} rows at the last answer, drained "
        f"{served.drained_at - result.ended:.2f} s later); peak RSS "
        f"{stats.get('peak_rss_mb', '?')} MB; server CPU {cpu_us:.0f} us a callback "
        f"(~{1e6 / max(cpu_us, 1):,.0f}/s on a core of its own)"
    )
    batches = stats.get("processor_batches") or 1
    print(
        f"{'':<10} {stats.get('batches', '?')} inbox writer transactions (largest "
        f"{stats.get('largest_batch', '?')}), {batches} processor batches "
        f"({stats.get('processed', 0) / batches:.0f} rows a batch)"
    )


def bench_processing(label: str, make_url: Callable[[], Iterator[str]], plan: Plan) -> None:
    """Processing alone and its raw-SQL floor, each on a fresh database in a child process."""
    results = {}
    for what in ("floor", "toolkit"):
        with contextmanager(make_url)() as url:
            command = [sys.executable, "-m", "bench.ingest_process", what, url]
            output = subprocess.run(
                [*command, str(len(plan.requests))], check=True, capture_output=True, text=True
            )
            results[what] = json.loads(output.stdout.strip().splitlines()[-1])
    floor, toolkit = results["floor"], results["toolkit"]
    floor_rate = floor["rows"] / floor["seconds"]
    rate = toolkit["rows"] / toolkit["seconds"]
    floor_cpu = floor["cpu_seconds"] / floor["rows"] * 1e6
    cpu = toolkit["cpu_seconds"] / toolkit["rows"] * 1e6
    both = 1 / (1 / plan.floor.rate + 1 / floor_rate)
    print(
        f"{'':<10} processing alone: {rate:,.0f} rows/s ({cpu:.0f} us CPU a row, peak RSS "
        f"{toolkit['peak_rss_mb']} MB) vs the same writes in raw SQL {floor_rate:,.0f} rows/s "
        f"({floor_cpu:.0f} us): toolkit/floor {rate / floor_rate:.2f}; floor of the whole path "
        f"(answer floor + raw SQL) {both:,.0f}/s"
    )


def sqlite_urls() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="scrm-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


def postgres_urls() -> Iterator[str]:
    with scratch_postgres("scrm_bench_ingest") as url:
        yield url


def bench(label: str, make_url: Callable[[], Iterator[str]], plan: Plan) -> None:
    with contextmanager(make_url)() as url:
        bench_backend(label, url, plan)
    if plan.full:
        bench_processing(label, make_url, plan)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--pin", action="store_true", help="server on one CPU, driver on another")
    parser.add_argument(
        "--full",
        action="store_true",
        help="serve with the whole bot and count a callback once it is processed",
    )
    parser.add_argument(
        "--engine", action="store_true", help="with --full: let the engine run the steps too"
    )
    parser.add_argument("--serve", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        if args.pin:
            pin_to_cpu(0)
        run(serve(args.serve, args.full, args.engine))
        return
    if args.pin:
        pin_to_cpu(1)
    try:
        import uvloop  # noqa: F401

        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    traffic = make_traffic(args.callbacks)
    print(f"{args.callbacks} distinct callbacks, {args.connections} connections, {loop_name}")
    print(f"traffic    {traffic.describe()}")
    floor = floor_rate(traffic.requests)
    print(
        f"floor      signature + decrypt_message + parse_message: {floor.rate:,.0f} callbacks/s "
        f"({floor.cpu_us:.0f} us CPU a callback)"
    )
    plan = Plan(traffic, args.connections, floor, args.pin, args.full, args.engine)
    if args.backend in ("sqlite", "all"):
        bench("sqlite", sqlite_urls, plan)
    if args.backend in ("postgres", "all"):
        problem = postgres_available()
        if problem is not None:
            print(f"postgres   skipped: not reachable at 127.0.0.1:5432 ({problem})")
        else:
            bench("postgres", postgres_urls, plan)


if __name__ == "__main__":
    main()
