"""Ingest benchmark: signed WeCom callbacks through the real HTTP server into the inbox.

Run ``python -m bench.ingest`` (options: ``--help``). For each database (a SQLite file under a
temporary folder, and PostgreSQL when it answers at 127.0.0.1:5432, in a scratch database
created and dropped here) it starts the server with the inbox writer in one separate process,
drives it from this process with N concurrent keep-alive connections over loopback (a lean
asyncio protocol with pre-encoded requests, so the driver costs a fraction of the server's CPU
on the shared cores) for a bounded number of distinct signed callbacks, and prints accepted
callbacks/s, p50/p99 latency, the server's peak RSS, its CPU time a callback and how many
transactions the writer used. It also measures the floor: signature check +
wechatpy ``decrypt_message`` + wechatpy ``parse_message`` alone in a loop, and prints the ratio
end-to-end / floor (goal: >= 0.5 on SQLite) and the floor's CPU time a callback against the
server's (steadier than wall-clock rates when other work shares the machine). With two or more
CPUs the server is pinned to one core and the driver to another with ``--pin`` (off by default:
on a shared machine the scheduler does better). uvloop is used when importable.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

from aiohttp import web

from bench.common import postgres_available, run, scratch_postgres
from bench.engine_timing import percentile
from bot.callback.inbox_writer import InboxWriter
from bot.callback.routes import add_callback_routes
from bot.callback.samples import SignedRequest, customer_added_xml, sign_wecom
from bot.config import Config, parse_config
from bot.server import build_app, open_runtime
from sop.clock import SystemClock
from store.db import create_engine, session_factory
from store.migrate import upgrade

CORP_ID = "ww0bench0corp0id"
APP = {
    "name": "bench",
    "agent_id": 1000002,
    "token": "benchToken",
    "encoding_aes_key": "J6MSm+Mxx6aK5Ty67kVGmCxvdWhn2O8x+J2L7TnSD+s",
}


def bench_config(database_url: str) -> Config:
    return parse_config(
        {"database_url": database_url, "wecom": {"corp_id": CORP_ID, "apps": [APP]}}, environ={}
    )


def pin_to_cpu(index: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})


# -- the server process -----------------------------------------------------------------------


async def serve(database_url: str, full: bool) -> None:
    """Run the callback server until stdin closes; then print the writer's stats as JSON.

    ``full`` runs the production composition (``bot.server``: the inbox processor works
    through the callbacks in the same process while they arrive); otherwise only the
    answer path (routes + inbox writer) runs.
    """
    if full:
        async with open_runtime(bench_config(database_url)) as runtime:
            await serve_app(build_app(runtime), runtime.writer)
        return
    engine = create_engine(database_url)
    writer = InboxWriter(session_factory(engine), SystemClock())
    await writer.start()
    app = web.Application()
    add_callback_routes(app, bench_config(database_url), writer)
    await serve_app(app, writer)
    await writer.stop()
    await engine.dispose()


async def serve_app(app: web.Application, writer: InboxWriter) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    started = resource.getrusage(resource.RUSAGE_SELF)
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    stats = asdict(writer.stats)
    await runner.cleanup()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime + usage.ru_stime) - (started.ru_utime + started.ru_stime)
    report = {
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "serving_cpu_seconds": round(cpu, 3),
        "serving_system_seconds": round(usage.ru_stime - started.ru_stime, 3),
        **stats,
    }
    print(json.dumps(report), flush=True)


# -- the driver -------------------------------------------------------------------------------


def make_requests(count: int) -> list[SignedRequest]:
    """``count`` distinct signed callbacks (customer added through a channel code)."""
    app = bench_config("sqlite://").wecom.apps[0]
    base = 1_700_000_000
    return [
        sign_wecom(
            app,
            CORP_ID,
            customer_added_xml(
                corp_id=CORP_ID,
                user_id=f"staff{i % 50}",
                external_user_id=f"wmBench{i:012d}AAAA",
                state=f"channel{i % 7}",
                welcome_code=f"WELCOME{i:016d}",
                create_time=base + i // 10,
            ),
            timestamp=base + i // 10,
            nonce=f"{i:010d}",
        )
        for i in range(count)
    ]


@dataclass
class DriveResult:
    accepted: int
    failed: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection sending one request at a time, parsing answers leanly.

    The driver shares the machine's cores with the server, so it must cost far less per request
    than the server does: requests are pre-encoded bytes and an answer is read only as far as its
    status line and Content-Length. Like the platform, it never pipelines.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0 or self._waiter is None:
            return
        length = 0
        for line in self._buffer[:head_end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self._buffer) < head_end + 4 + length:
            return
        status = int(self._buffer[9:12])
        self._buffer = self._buffer[head_end + 4 + length :]
        waiter, self._waiter = self._waiter, None
        waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("server closed the connection"))

    async def send(self, request: bytes) -> int:
        """Send one request; return the answer's status."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


def encode_request(request: SignedRequest, host: str) -> bytes:
    target = request.url("").encode("ascii")
    head = (
        f"POST {target.decode('ascii')} HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: {request.content_type}\r\nContent-Length: {len(request.body)}\r\n\r\n"
    )
    return head.encode("ascii") + request.body


async def drive(port: int, requests: list[SignedRequest], connections: int) -> DriveResult:
    host = f"127.0.0.1:{port}"
    encoded = [encode_request(r, host) for r in requests]
    latencies: list[float] = []
    failed = 0
    next_index = 0
    loop = asyncio.get_running_loop()

    async def worker(connection: _Connection, stop: int) -> None:
        nonlocal next_index, failed
        while next_index < stop:
            request = encoded[next_index]
            next_index += 1
            started = time.perf_counter()
            if await connection.send(request) == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failed += 1

    opened = [
        await loop.create_connection(_Connection, "127.0.0.1", port) for _ in range(connections)
    ]
    pool = []
    for transport, protocol in opened:
        protocol.connection_made(transport)  # uvloop may call it only after returning
        pool.append(protocol)
    try:
        warm = min(200, len(encoded) // 10)
        await asyncio.gather(*(worker(c, warm) for c in pool))
        latencies.clear()
        failed = 0
        started = time.perf_counter()
        await asyncio.gather(*(worker(c, len(encoded)) for c in pool))
        seconds = time.perf_counter() - started
    finally:
        for transport, _ in opened:
            transport.close()
    return DriveResult(len(latencies), failed, seconds, latencies)


# -- the floor --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """The floor's wall-clock rate, and its CPU time a callback (steady when cores are shared)."""

    rate: float
    cpu_us: float


def floor_rate(requests: list[SignedRequest], seconds: float = 3.0) -> Floor:
    """Signature check + wechatpy decrypt_message + parse_message alone, in a loop."""
    from wechatpy.enterprise import parse_message
    from wechatpy.enterprise.crypto import WeChatCrypto

    crypto = WeChatCrypto(APP["token"], APP["encoding_aes_key"], CORP_ID)
    done = 0
    started = time.perf_counter()
    cpu_started = time.thread_time()
    deadline = started + seconds
    for request in requests:
        q = request.query
        plaintext = crypto.decrypt_message(
            request.body, q["msg_signature"], q["timestamp"], q["nonce"]
        )
        parse_message(plaintext)
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


async def count_rows(url: str) -> int:
    from sqlalchemy import func, select

    from store.models import InboxRow

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(InboxRow))).scalar_one()
            )
    finally:
        await engine.dispose()


# -- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    requests: list[SignedRequest]
    connections: int
    floor: Floor
    pin: bool
    full: bool


def bench_backend(label: str, url: str, plan: Plan) -> None:
    """Migrate ``url``, serve it from a child process, drive it, print one line."""
    run(migrate(url))
    command = [sys.executable, "-m", "bench.ingest", "--serve", url]
    if plan.full:
        command.append("--full")
    server = subprocess.Popen(
        [*command, "--pin"] if plan.pin else command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        ready = server.stdout.readline().split()
        if ready[:1] != ["READY"]:
            raise RuntimeError(f"server did not start: {ready!r}")
        result = run(drive(int(ready[1]), plan.requests, plan.connections))
    finally:
        server.stdin.close()
        stats_line = server.stdout.readline()
        server.wait(timeout=60)
    stats = json.loads(stats_line) if stats_line else {}
    rows = run(count_rows(url))
    print(
        f"{label:<10} {result.accepted:>6} accepted ({result.failed} failed, {rows} rows) "
        f"in {result.seconds:.2f} s: {result.rate:,.0f} callbacks/s, "
        f"p50 {result.percentile(0.5) * 1000:.1f} ms, "
        f"p99 {result.percentile(0.99) * 1000:.1f} ms, "
        f"peak RSS {stats.get('peak_rss_mb', '?')} MB, {stats.get('batches', '?')} transactions "
        f"(largest {stats.get('largest_batch', '?')}); "
        f"end-to-end/floor {result.rate / plan.floor.rate:.2f}"
    )
    if rows and stats.get("serving_cpu_seconds"):
        cpu_us = stats["serving_cpu_seconds"] / rows * 1e6
        floor_us = plan.floor.cpu_us
        print(
            f"{'':<10} server CPU {cpu_us:.0f} us a callback (HTTP, crypto, inbox; "
            f"{stats.get('serving_system_seconds', 0) / rows * 1e6:.0f} us of it in the kernel) "
            "against the "
            f"floor's {floor_us:.0f} us: floor/server CPU {floor_us / cpu_us:.2f}"
        )


def bench_sqlite(plan: Plan) -> None:
    with tempfile.TemporaryDirectory(prefix="scrm-bench-") as folder:
        bench_backend("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}", plan)


def bench_postgres(plan: Plan) -> None:
    problem = postgres_available()
    if problem is not None:
        print(f"postgres   skipped: not reachable at 127.0.0.1:5432 ({problem})")
        return
    with scratch_postgres("scrm_bench_ingest") as url:
        bench_backend("postgres", url, plan)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--callbacks", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--pin", action="store_true", help="server on one CPU, driver on another")
    parser.add_argument(
        "--full",
        action="store_true",
        help="serve with the whole bot (inbox processor running), not only the answer path",
    )
    parser.add_argument("--serve", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        if args.pin:
            pin_to_cpu(0)
        run(serve(args.serve, args.full))
        return
    if args.pin:
        pin_to_cpu(1)
    try:
        import uvloop  # noqa: F401

        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    print(f"{args.callbacks} distinct callbacks, {args.connections} connections, {loop_name}")
    requests = make_requests(args.callbacks)
    floor = floor_rate(requests)
    print(
        f"floor      signature + decrypt_message + parse_message: {floor.rate:,.0f} callbacks/s "
        f"({floor.cpu_us:.0f} us CPU a callback)"
    )
    plan = Plan(requests, args.connections, floor, args.pin, args.full)
    if args.backend in ("sqlite", "all"):
        bench_sqlite(plan)
    if args.backend in ("postgres", "all"):
        bench_postgres(plan)


if __name__ == "__main__":
    main()
