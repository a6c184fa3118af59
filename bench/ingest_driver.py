"""The ingest bench's load: N keep-alive connections sending pre-encoded signed callbacks.

The driver shares the machine's cores with the server, so it costs a fraction of what the server
spends on a request: requests are bytes encoded beforehand, answers are read only as far as the
status line and Content-Length, and like the platform it never pipelines.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast

from bench.engine_timing import percentile
from bot.callback.samples import SignedRequest


@dataclass
class DriveResult:
    """Answers of the measured phase (after a short warm-up), and when the load began and
    ended (``time.perf_counter``), warm-up included."""

    accepted: int
    failed: int
    seconds: float
    latencies: list[float]
    began: float
    ended: float

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
    """Send every request once over ``connections`` connections, one at a time on each."""
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
    began = time.perf_counter()
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
    return DriveResult(len(latencies), failed, seconds, latencies, began, time.perf_counter())
