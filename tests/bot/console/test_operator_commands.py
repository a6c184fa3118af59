"""The operator commands as an operator runs them: real processes, real databases, real HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from store.models import InboxRow, InboxState
from tests.support.cli import run_scrm
from tests.support.database import open_database

REPO = Path(__file__).resolve().parents[3]
SCRM = [sys.executable, "-m", "bot.cli"]


def scrm(
    *args: str, config: Path | None, cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    prefix = ["--config", str(config)] if config else []
    return run_scrm(*prefix, *args, cwd=cwd, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def config_file(tmp_path: Path, database_url: str) -> Path:
    """The repository's demo config.yaml pointed at this test's database and a free port."""
    asyncio.run(_empty(database_url))
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    data["database_url"] = database_url
    data["server"]["port"] = free_port()
    data["wecom"]["api_base_url"] = "http://127.0.0.1:9"  # nothing listens: fetches fail, retried
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


async def _empty(url: str) -> None:
    database = await open_database("postgres" if url.startswith("postgres") else "sqlite", url)
    await database.engine.dispose()


async def _inbox(url: str) -> list[InboxRow]:
    database = await open_database("sqlite", url)  # "sqlite": no truncation, just read
    try:
        async with database.sessions() as session:
            return list((await session.scalars(select(InboxRow).order_by(InboxRow.id))).all())
    finally:
        await database.engine.dispose()


@pytest.fixture
def running_server(config_file: Path, tmp_path: Path) -> Iterator[str]:
    """``scrm serve`` in its own process, stopped with SIGTERM (it must exit cleanly)."""
    port = yaml.safe_load(config_file.read_text(encoding="utf-8"))["server"]["port"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRM_")}
    env["PYTHONPATH"] = str(REPO)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*SCRM, "--config", str(config_file), "serve"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise AssertionError(f"scrm serve exited: {log.read_text()}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0, log.read_text()


def test_simulate_against_serve_captures_every_callback(
    running_server: str, config_file: Path, tmp_path: Path, database_url: str
) -> None:
    sent = scrm("simulate", "--url", running_server, config=config_file, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.count("ok  200") == 5
    rows: list[InboxRow] = []
    for _ in range(200):
        rows = asyncio.run(_inbox(database_url))
        if rows and all(r.state is InboxState.DONE for r in rows):
            break
        time.sleep(0.05)
    assert [r.state for r in rows] == [InboxState.DONE] * 5
    listed = scrm("customers", config=config_file, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "wmDemoCustomer" in listed.stdout
    timeline = scrm("timeline", "wmDemoCustomer0000000000000001", config=config_file, cwd=tmp_path)
    assert "customer_added" in timeline.stdout


def test_inbox_commands_show_and_retry_a_failed_row(
    config_file: Path, tmp_path: Path, database_url: str
) -> None:
    async def seed() -> None:
        database = await open_database("sqlite", database_url)
        async with database.sessions.begin() as session:
            from datetime import UTC, datetime

            session.add(
                InboxRow(
                    source="wecom:main",
                    dedupe_key="k",
                    content_type="xml",
                    payload="<xml/>",
                    received_at=datetime(2026, 11, 23, tzinfo=UTC),
                    state=InboxState.FAILED,
                    attempts=1,
                    error="PayloadError: no MsgType",
                )
            )
        await database.engine.dispose()

    asyncio.run(seed())
    listed = scrm("inbox", "ls", "--state", "failed", config=config_file, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "PayloadError" in listed.stdout and "failed: 1" in listed.stdout
    shown = scrm("inbox", "show", "1", config=config_file, cwd=tmp_path)
    assert "no MsgType" in shown.stdout and "<xml/>" in shown.stdout
    assert scrm("inbox", "retry", config=config_file, cwd=tmp_path).returncode == 2
    retried = scrm("inbox", "retry", "1", config=config_file, cwd=tmp_path)
    assert "1 row(s) queued again" in retried.stdout
    assert [r.state for r in asyncio.run(_inbox(database_url))] == [InboxState.PENDING]


def test_invalid_config_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("timezone: Mars/Olympus\nserver: {port: 99999}\n", encoding="utf-8")
    result = scrm("serve", config=bad, cwd=tmp_path)
    assert result.returncode == 1
    assert "timezone" in result.stderr and "server.port" in result.stderr


def test_demo_runs_on_sqlite_without_a_wecom_account(tmp_path: Path) -> None:
    result = scrm("demo", config=REPO / "config.yaml", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo finished" in result.stdout
    out = result.stdout
    for seen in ("welcome message", "Official Account message", "tag mirrored to WeCom"):
        assert seen in out  # the welcome, the keyword reply and opt-out answer, the tag
    for task in ("新客户首次跟进", "客户投诉，请立即处理"):
        assert task in out  # the next-morning follow-up and the complaint alert
    assert "Wed 10:00" in out or "10:00" in out
    assert (tmp_path / "var" / "demo.db").is_file()
