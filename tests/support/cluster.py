"""Several real ``scrm serve`` processes on one database, and a platform that calls them.

:class:`Cluster` writes a configuration pointing at the fake WeCom, starts each process as an
operator would (``python -m bot.cli --config ... serve --port N [--role R]``), waits for its
``/healthz``, and can SIGKILL and restart one. :class:`Platform` plays WeCom's side of the
callbacks: it signs each one, POSTs it to a process the way a load balancer spreads them,
sometimes to two at once (a retry that went elsewhere), and when a process does not answer
200 it sends it again to another one after a pause, as the platform retries. Each process's
output goes to a log file the test prints when something goes wrong.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bot.callback.samples import sign_wecom
from bot.config import WecomApp

REPO = Path(__file__).resolve().parents[2]
APP = WecomApp(
    name="main",
    agent_id=1000002,
    secret="fake-secret",
    token="clustertoken",
    encoding_aes_key="lKFLyDzaYwAGnAA7TwWX2Otherm4EFyh0oNSEPPTGH4",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    folder: Path,
    *,
    database_url: str,
    corp_id: str,
    api_base_url: str,
    playbooks: Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    config = {
        "database_url": database_url,
        "timezone": "Asia/Shanghai",
        "wecom": {
            "corp_id": corp_id,
            "api_base_url": api_base_url,
            "apps": [APP.model_dump()],
        },
        "delivery": {"avoid_rush": None},
        "sop": {
            "playbooks": [str(playbooks)],
            "campaigns": [],
            "templates": str(REPO / "templates"),
            # Nudges go out at once whatever the time of day the test runs.
            "tasks": {"quiet_hours": None},
        },
        **(extra or {}),
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class ServeProcess:
    name: str
    role: str
    config: Path
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def takes_callbacks(self) -> bool:
        return self.role in ("all", "web")

    def start(self) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
        environ["PYTHONPATH"] = str(REPO)
        command = [sys.executable, "-m", "bot.cli", "--config", str(self.config), "serve"]
        command += ["--port", str(self.port)]
        if self.role != "all":
            command += ["--role", self.role]
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts}: {' '.join(command)}\n".encode())
            self.process = subprocess.Popen(
                command, cwd=self.config.parent, env=environ, stdout=log, stderr=subprocess.STDOUT
            )

    async def ready(self, http: aiohttp.ClientSession, within: float = 60) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}")
            try:
                async with http.get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {within} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    async def stop(self, within: float = 60) -> int | None:
        """SIGTERM, and the exit status (None: still running after ``within`` seconds).

        Waits without blocking the loop: the fakes the process talks to live on it.
        """
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + within
        while process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return process.poll()

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return "(no log)"
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Cluster:
    processes: list[ServeProcess]

    def web(self) -> list[ServeProcess]:
        return [p for p in self.processes if p.takes_callbacks and p.alive]

    async def start(self, http: aiohttp.ClientSession) -> None:
        for process in self.processes:
            process.start()
        await asyncio.gather(*(p.ready(http) for p in self.processes))

    def logs(self) -> str:
        return "\n".join(f"===== {p.name} ({p.role})\n{p.tail()}" for p in self.processes)

    async def stop(self) -> list[int | None]:
        return list(await asyncio.gather(*(p.stop() for p in self.processes)))


@contextmanager
def cluster(folder: Path, config: Path, roles: Sequence[str]) -> Iterator[Cluster]:
    processes = [
        ServeProcess(f"serve{i}", role, config, folder / f"serve{i}.log")
        for i, role in enumerate(roles)
    ]
    running = Cluster(processes)
    try:
        yield running
    finally:
        for process in processes:
            if process.alive:
                process.kill()


@dataclass
class Delivered:
    """What the platform saw for one callback."""

    plaintext: str
    accepted: bool = False
    attempts: int = 0
    statuses: list[str] = field(default_factory=list)


class Platform:
    """WeCom sending signed callbacks to the cluster, with its retries and duplicates."""

    def __init__(
        self,
        cluster: Cluster,
        http: aiohttp.ClientSession,
        corp_id: str,
        *,
        duplicate_share: float = 0.2,
        rng: random.Random | None = None,
        concurrency: int = 32,
    ) -> None:
        self._cluster = cluster
        self._http = http
        self._corp_id = corp_id
        self._duplicates = duplicate_share
        self._rng = rng or random.Random(1)
        self._slots = asyncio.Semaphore(concurrency)
        self._nonce = 0
        self.delivered: list[Delivered] = []

    async def send(self, plaintext: str, *, retries: int = 20) -> Delivered:
        """Deliver one callback until a process answers 200 (the platform retries)."""
        record = Delivered(plaintext)
        self.delivered.append(record)
        while not record.accepted and record.attempts < retries:
            targets = self._cluster.web()
            if not targets:
                await asyncio.sleep(0.2)
                continue
            record.attempts += 1
            count = 2 if len(targets) > 1 and self._rng.random() < self._duplicates else 1
            chosen = self._rng.sample(targets, count)
            answers = await asyncio.gather(*(self._post(p.url, plaintext) for p in chosen))
            record.statuses += answers
            record.accepted = "200" in answers
            if not record.accepted:
                await asyncio.sleep(0.2 + self._rng.random() * 0.3)
        return record

    async def _post(self, base: str, plaintext: str) -> str:
        self._nonce += 1
        request = sign_wecom(
            APP, self._corp_id, plaintext, timestamp=int(time.time()), nonce=f"{self._nonce:010d}"
        )
        async with self._slots:
            try:
                async with self._http.post(
                    request.url(base),
                    data=request.body,
                    headers=request.headers,
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as response:
                    await response.read()
                    return str(response.status)
            except (aiohttp.ClientError, TimeoutError) as error:
                return type(error).__name__
