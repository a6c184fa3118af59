"""``scrm serve`` in a process of its own, as a supervisor runs it: a configuration file,
readiness polled over HTTP, SIGTERM to stop, the exit code and the log read afterwards.

``SCRM_*`` variables of the test run are not inherited (a developer's shell must not change
a test's outcome).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bot.config import WecomApp

REPO = Path(__file__).resolve().parents[2]
#: The app every served test configures (its token and key sign the test's callbacks).
APP = WecomApp(
    name="main",
    agent_id=1000002,
    secret="fake-secret",
    token="servetoken",
    encoding_aes_key="lKFLyDzaYwAGnAA7TwWX2Otherm4EFyh0oNSEPPTGH4",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    folder: Path,
    database_url: str,
    *,
    corp_id: str = "ww0000fakecorp0001",
    api_base_url: str = "http://127.0.0.1:9",
    **extra: Any,
) -> Path:
    """A config file with one app (:data:`APP`) on ``database_url``; ``extra`` top-level keys
    are merged in (``server``, ``sop``, ``delivery``...)."""
    data: dict[str, Any] = {
        "database_url": database_url,
        "server": {"host": "127.0.0.1", "port": free_port()},
        "wecom": {
            "corp_id": corp_id,
            "api_base_url": api_base_url,
            "apps": [APP.model_dump()],
        },
        "sop": {"playbooks": ["playbooks"], "campaigns": ["campaigns"]},
    }
    for key, value in extra.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def configured_port(config: Path) -> int:
    return int(yaml.safe_load(config.read_text(encoding="utf-8"))["server"]["port"])


@dataclass
class Served:
    process: asyncio.subprocess.Process
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def stop(self, signum: signal.Signals = signal.SIGTERM) -> tuple[int, float]:
        """Send ``signum``; the exit code and the seconds it took (generous timeout)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.process.send_signal(signum)
        code = await asyncio.wait_for(self.process.wait(), timeout=120)
        return code, loop.time() - started


async def start_serve(config: Path, *args: str, log: Path, port: int | None = None) -> Served:
    """Start ``scrm --config CONFIG serve ARGS`` and wait until ``/healthz`` answers."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
    environ["PYTHONPATH"] = str(REPO)
    port = configured_port(config) if port is None else port
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
            *args,
            cwd=config.parent,
            env=environ,
            stdout=out,
            stderr=out,
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    async with aiohttp.ClientSession() as http:
        for _ in range(1200):
            if process.returncode is not None:
                raise AssertionError(f"scrm serve exited {process.returncode}:\n{served.output()}")
            try:
                async with http.get(f"{served.url}/healthz") as response:
                    if response.status == 200:
                        return served
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    raise AssertionError(f"scrm serve did not answer /healthz:\n{served.output()}")


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()
