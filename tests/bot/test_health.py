"""``/healthz`` says what this process runs and how each loop is doing; ``/readyz`` answers 503
with the reason while the database is unreachable or behind the code, 200 otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from bot.background import Background, Loop
from bot.config import Config
from bot.health import Health, Readiness, add_health_routes
from bot.roles import Role
from bot.server import build_app, open_runtime
from sop.loop_status import note_pass
from sop.settings import SopSettings
from store.db import create_engine
from store.migrate import head_revision
from tests.bot.test_server import added, eventually, make_config, send
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom

Client = TestClient[web.Request, web.Application]
GOOD = "name: hello\ntrigger: {event: customer_added}\nsteps:\n  - nudge: {script: {text: hi}}\n"


@pytest.fixture
async def client(
    db: Database, fake_wecom: FakeWecom, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[Client]:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "hello.yaml").write_text(GOOD, encoding="utf-8")
    config = make_config(db, fake_wecom)
    sop = SopSettings(playbooks=[str(playbooks)], campaigns=[str(tmp_path / "campaigns")])
    config = config.model_copy(update={"sop": sop})
    async with (
        open_runtime(config, clock=clock) as runtime,
        TestClient(TestServer(build_app(runtime))) as client,
    ):
        yield client


async def health(client: Client) -> dict[str, Any]:
    response = await client.get("/healthz")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def test_healthz_names_the_role_and_each_loops_last_pass_and_error(
    client: Client, clock: ManualClock, tmp_path: Path
) -> None:
    assert await send(client, added(clock)) == (200, "")
    body = await eventually(
        lambda: health(client), lambda b: b["loops"]["processor"]["passes"] > 0
    )
    assert body["status"] == "ok" and body["role"] == "all"
    assert set(body["loops"]) == {
        "processor",
        "refresher",
        "engine",
        "scheduler",
        "sender",
        "mass_results",
        "transfers",
        "playbook_reload",
        "campaign_reload",
    }
    processor = body["loops"]["processor"]
    assert processor["running"] is True and processor["last_error"] is None
    assert processor["last_pass_at"].endswith("+08:00")
    assert body["inbox_writer"]["rows"] == 1

    (tmp_path / "playbooks" / "hello.yaml").write_text(GOOD.replace("nudge", "dealy"))
    body = await eventually(
        lambda: health(client), lambda b: b["loops"]["playbook_reload"]["last_error"] is not None
    )
    reload = body["loops"]["playbook_reload"]
    assert "playbooks do not load" in reload["last_error"] and "dealy" in reload["last_error"]
    assert reload["last_error_at"].endswith("+08:00")
    assert body["status"] == "ok"  # the loop runs on with the last good version


async def test_readyz_is_ready_at_the_head_and_not_behind_it(client: Client, db: Database) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {
        "status": "ready",
        "role": "all",
        "reason": f"database schema at revision {head_revision()}",
    }
    set_version = text("UPDATE alembic_version SET version_num = :v")
    try:
        async with db.engine.begin() as connection:
            await connection.execute(set_version, {"v": "0009"})
        response = await eventually(lambda: client.get("/readyz"), lambda r: r.status == 503)
        body = await response.json()
        assert body["status"] == "not ready"
        assert body["reason"] == (
            f"the database schema is at revision 0009, this code needs {head_revision()}:"
            " run `scrm db upgrade`"
        )
    finally:
        async with db.engine.begin() as connection:
            await connection.execute(set_version, {"v": head_revision()})


def test_a_schema_newer_than_the_code_stays_ready_with_a_note() -> None:
    readiness = Readiness(create_engine("sqlite:///:memory:"))
    verdict = readiness.judge("9999")
    assert verdict.ready and "newer than this code's" in verdict.reason
    assert not readiness.judge(None).ready


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_readiness_reports_a_database_that_refuses_or_does_not_answer() -> None:
    refused = create_engine(f"postgresql://postgres@127.0.0.1:{closed_port()}/scrm")
    try:
        verdict = await Readiness(refused).verdict()
    finally:
        await refused.dispose()
    assert not verdict.ready and verdict.reason.startswith("the database cannot be read:")

    with silent_listener() as port:
        mute = create_engine(f"postgresql://postgres@127.0.0.1:{port}/scrm")
        try:
            verdict = await Readiness(mute, timeout=0.3).verdict()
        finally:
            await mute.dispose()
    assert verdict == verdict.__class__(False, "the database did not answer within 0.3 s")


async def test_readyz_answers_503_once_stopping(
    db: Database, fake_wecom: FakeWecom, clock: ManualClock
) -> None:
    config: Config = make_config(db, fake_wecom)
    async with (
        open_runtime(config, clock=clock) as runtime,
        TestClient(TestServer(build_app(runtime))) as client,
    ):
        assert (await client.get("/readyz")).status == 200
        runtime.begin_stop()
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["reason"] == "the process is stopping"
        assert (await health(client))["status"] == "stopping"


async def test_background_reports_passes_and_cuts_a_loop_that_will_not_stop() -> None:
    stopping = asyncio.Event()

    async def polite() -> None:
        note_pass()
        await stopping.wait()

    async def stubborn() -> None:
        note_pass()
        await asyncio.Event().wait()

    async def quitter() -> None:
        return None

    background = Background([Loop("polite", polite), Loop("stubborn", stubborn)])
    background.start()
    await asyncio.sleep(0)
    assert background.statuses["polite"].passes == background.statuses["stubborn"].passes == 1
    assert background.ended() == []
    stopping.set()
    assert await background.wait(0.2) == ["stubborn"]

    early = Background([Loop("quitter", quitter)])
    early.start()
    await asyncio.sleep(0)
    assert early.ended() == ["quitter"]
    assert await early.wait(1) == []


async def test_healthz_answers_500_when_a_loop_has_ended() -> None:
    async def quitter() -> None:
        return None

    background = Background([Loop("sender", quitter)])
    engine = create_engine("sqlite:///:memory:")
    state = Health(Role.WORKER, ZoneInfo("Asia/Shanghai"), Readiness(engine), asyncio.Event())
    state.background = background
    app = web.Application()
    add_health_routes(app, state)
    background.start()
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/healthz")
        body = await response.json()
    await engine.dispose()
    assert response.status == 500
    assert body["status"] == "failing" and body["loops"]["sender"]["running"] is False
    assert body["reason"] == "loop(s) sender ended; restart the process"
