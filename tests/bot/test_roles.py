"""Process roles: what a ``web``, ``worker`` and ``all`` process runs, the combinations refused
with the reason, and the start-up summary an operator reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.config import Config, ServerConfig, WecomConfig
from bot.roles import Role, RoleError, check_role
from bot.server import StartupError, build_app, open_runtime
from bot.startup import Facts, summary_lines
from store.models import InboxRow, InboxState
from tests.bot.test_server import APP, BOT, MP, added, eventually, make_config, send
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom


def test_in_memory_sqlite_is_refused_for_a_split_role() -> None:
    config = Config(
        database_url="sqlite:///:memory:", wecom=WecomConfig(corp_id="ww1", apps=(APP,))
    )
    assert check_role(Role.ALL, config) == []
    for role in (Role.WEB, Role.WORKER):
        with pytest.raises(RoleError, match="in-memory SQLite database is private"):
            check_role(role, config)


def test_web_without_endpoints_is_refused_and_notes_say_what_is_left_to_others() -> None:
    with pytest.raises(RoleError, match="no callback endpoint to serve"):
        check_role(Role.WEB, Config(database_url="postgresql://u@h/db"))
    config = Config(
        database_url="postgresql://u@h/db", wecom=WecomConfig(corp_id="ww1", apps=(APP,))
    )
    [web] = check_role(Role.WEB, config)
    assert "scrm serve --role worker" in web and "nothing is sent" in web
    [worker] = check_role(Role.WORKER, config)
    assert "scrm serve --role web" in worker
    sqlite = config.model_copy(update={"database_url": "sqlite:////srv/scrm.db"})
    assert any("same file /srv/scrm.db" in note for note in check_role(Role.WEB, sqlite))


async def test_open_runtime_refuses_a_bad_combination_before_touching_the_database() -> None:
    with pytest.raises(StartupError, match="no callback endpoint"):
        async with open_runtime(Config(database_url="sqlite:////nonexistent/x.db"), role=Role.WEB):
            pass


def test_summary_names_endpoints_loops_playbooks_and_hides_the_password() -> None:
    config = Config(
        database_url="postgresql://scrm:s3cret@db.internal:5432/scrm",
        wecom=WecomConfig(corp_id="ww1", apps=(APP,), aibots=(BOT,)),
        mp=(MP,),
        server=ServerConfig(public_url="https://scrm.example.com"),
    )
    facts = Facts(
        config=config,
        role=Role.ALL,
        address="http://0.0.0.0:8080",
        loops=["processor", "engine", "sender"],
        playbooks=["onboarding v3"],
        campaigns=["weekly_vip (next Mon 2026-11-30 10:00)"],
        revision="0010",
        now=datetime(2026, 11, 23, 1, 30, tzinfo=UTC),
    )
    text = "\n".join(summary_lines(facts))
    assert "s3cret" not in text
    assert (
        "database: postgresql+asyncpg://scrm:***@db.internal:5432/scrm (schema revision 0010)"
        in text
    )
    assert (
        "callback endpoint: wecom app sales: https://scrm.example.com/wecom/callback/sales" in text
    )
    assert "AI bot helper: https://scrm.example.com/wecom/aibot/helper" in text
    assert "Official Account news: https://scrm.example.com/mp/callback/news" in text
    assert "loops: processor, engine, sender" in text
    assert "playbooks: onboarding v3" in text and "cron campaigns: weekly_vip" in text
    assert "local time now 2026-11-23 09:30 +0800" in text
    assert "within 20 s" in text

    web = "\n".join(summary_lines(Facts(config=config, role=Role.WEB, address="x", loops=[])))
    assert "callback endpoint" in web and "loops:" not in web and "playbooks:" not in web
    worker = "\n".join(
        summary_lines(Facts(config=config, role=Role.WORKER, address="x", loops=[]))
    )
    assert "callback endpoint" not in worker and "loops: none" in worker


async def test_a_web_process_stores_callbacks_and_processes_none(
    db: Database, fake_wecom: FakeWecom, clock: ManualClock
) -> None:
    config = make_config(db, fake_wecom)
    async with (
        open_runtime(config, clock=clock, role=Role.WEB) as runtime,
        TestClient(TestServer(build_app(runtime))) as client,
    ):
        assert runtime.sop_engine is None and runtime.scheduler is None and runtime.sender is None
        assert await send(client, added(clock)) == (200, "")
        health = await (await client.get("/healthz")).json()
        assert health["role"] == "web" and health["loops"] == {}
        assert health["inbox_writer"]["rows"] == 1
    async with db.sessions() as session:
        states = (await session.scalars(select(InboxRow.state))).all()
    assert states == [InboxState.PENDING]  # stored, answered, left for a worker


async def test_a_worker_process_has_no_callback_endpoints_and_processes_the_inbox(
    db: Database, fake_wecom: FakeWecom, clock: ManualClock
) -> None:
    config = make_config(db, fake_wecom)
    async with (
        open_runtime(config, clock=clock, role=Role.WEB) as web,
        TestClient(TestServer(build_app(web))) as web_client,
    ):
        assert await send(web_client, added(clock)) == (200, "")
    async with (
        open_runtime(config, clock=clock, role=Role.WORKER) as worker,
        TestClient(TestServer(build_app(worker))) as client,
    ):
        assert (await send(client, added(clock, nonce="n2")))[0] == 404
        health = await (await client.get("/healthz")).json()
        assert health["role"] == "worker" and "inbox_writer" not in health
        assert {"processor", "engine", "scheduler", "sender"} <= set(health["loops"])

        async def states() -> list[InboxState]:
            async with db.sessions() as session:
                return list((await session.scalars(select(InboxRow.state))).all())

        assert await eventually(states, lambda s: s == [InboxState.DONE])
