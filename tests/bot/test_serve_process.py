"""``scrm serve`` as a process: its log, its roles side by side on one database, and a
graceful stop with work in flight (exit 0, in bounded time, nothing lost, nothing left
claimed)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import func, select

from bot.callback import samples
from sop.clock import SystemClock
from sop.engine.catalog import definition_of, register
from sop.engine.enroll import enroll
from sop.settings import SopSettings
from store.models import (
    AgendaItem,
    AgendaState,
    InboxRow,
    InboxState,
    OutboxRow,
    OutboxState,
    StepRun,
)
from tests.support.database import Database
from tests.support.engine_factories import add_customer, add_staff
from tests.support.engine_process import CRASH_PLAYBOOK, crash_playbook
from tests.support.fake_wecom import FakeWecom, running_fake_wecom
from tests.support.outbox import until
from tests.support.serve import APP, Served, free_port, get_json, start_serve, write_config

CORP = "ww0000fakecorp0001"
#: Scheduler job runs (about one a second) an idle server is watched for.
TICKS = 5
pytestmark = pytest.mark.slow


async def until_json(url: str, accept: Callable[[Any], bool], *, seconds: float = 60) -> Any:
    """Poll ``url`` until its JSON body is accepted."""
    body: Any = None
    for _ in range(int(seconds / 0.05)):
        _status, body = await get_json(url)
        if accept(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered as expected; last {body!r}")


def staff_text(n: int) -> samples.SignedRequest:
    now = int(time.time())
    plaintext = samples.staff_text_xml(
        corp_id=CORP,
        user_id="zhangsan",
        agent_id=1000002,
        content=f"hi {n}",
        msg_id=n,
        create_time=now,
    )
    return samples.sign_wecom(APP, CORP, plaintext, timestamp=now, nonce=f"n{n}")


async def post(http: aiohttp.ClientSession, base: str, request: samples.SignedRequest) -> int:
    async with http.post(request.url(base), data=request.body, headers=request.headers) as answer:
        return answer.status


async def inbox_states(db: Database) -> list[InboxState]:
    async with db.sessions() as session:
        return list((await session.scalars(select(InboxRow.state).order_by(InboxRow.id))).all())


async def test_an_idle_server_logs_a_summary_then_nothing_per_tick_as_json_lines(
    db: Database, tmp_path: Path
) -> None:
    config = write_config(tmp_path, db.url)
    served = await start_serve(config, "--log-format", "json", log=tmp_path / "serve.log")
    try:
        # The engine's tick job runs every second: five of them, and the log must not say so.
        await until_json(
            f"{served.url}/healthz", lambda body: body["loops"]["scheduler"]["passes"] >= TICKS
        )
    finally:
        code, _seconds = await served.stop()
    assert code == 0, served.output()
    records = [json.loads(line) for line in served.output().splitlines()]
    assert all(set(r) >= {"time", "level", "logger", "message"} for r in records)
    assert not [r for r in records if r["logger"].startswith(("apscheduler", "alembic"))]
    messages = [r["message"] for r in records]
    assert "scrm serve: role all (callbacks and background work)" in messages
    assert f"callback endpoint: wecom app main: {served.url}/wecom/callback/main" in messages
    summary_end = next(i for i, m in enumerate(messages) if m.startswith("on SIGTERM or SIGINT"))
    stop_begins = next(i for i, m in enumerate(messages) if m.startswith("SIGTERM received"))
    idle = messages[summary_end + 1 : stop_begins]  # events only (a lane taken), not ticks
    assert len(idle) < TICKS and len(set(idle)) == len(idle), idle
    assert messages[-1].startswith("stopped in")


async def test_web_and_worker_processes_share_one_database(db: Database, tmp_path: Path) -> None:
    config = write_config(tmp_path, db.url)
    web = await start_serve(config, "--role", "web", log=tmp_path / "web.log")
    try:
        _status, health = await get_json(f"{web.url}/healthz")
        assert health["role"] == "web" and health["loops"] == {}
        async with aiohttp.ClientSession() as http:
            answers = [await post(http, web.url, staff_text(n)) for n in range(1, 6)]
        assert answers == [200] * 5
        assert await inbox_states(db) == [InboxState.PENDING] * 5  # no worker yet: they wait

        worker = await start_serve(
            config, "--role", "worker", log=tmp_path / "worker.log", port=free_port()
        )
        try:
            _status, health = await get_json(f"{worker.url}/healthz")
            assert health["role"] == "worker"
            assert {"processor", "engine", "scheduler", "sender"} <= set(health["loops"])
            async with aiohttp.ClientSession() as http:
                assert await post(http, worker.url, staff_text(6)) == 404  # no callbacks here
            for _ in range(1200):
                if await inbox_states(db) == [InboxState.DONE] * 5:
                    break
                await asyncio.sleep(0.05)
            assert await inbox_states(db) == [InboxState.DONE] * 5, worker.output()
        finally:
            code, _ = await worker.stop()
        assert code == 0, worker.output()
    finally:
        code, _ = await web.stop()
    assert code == 0, web.output()


ENROLLMENTS, STAFF = 300, 10
SENDS = ("message/send", "externalcontact/add_msg_template", "externalcontact/mark_tag")
#: The graceful stop's limit in the test's configuration, and a generous bound on top of it
#: (a slow shared machine; this is a bound, not a performance figure).
SHUTDOWN_SECONDS, SLACK = 10, 30


def _write_playbook(playbooks: Path) -> None:
    playbooks.mkdir()
    (playbooks / "crash.yaml").write_text(
        yaml.safe_dump(definition_of(crash_playbook()), allow_unicode=True), encoding="utf-8"
    )


async def _seed_work(db: Database, fake: FakeWecom) -> None:
    """Enrollments whose three steps (tag, nudge card, mass message) are all due now, on
    customers the fake WeCom knows (the server loads the same playbook from its file)."""
    now = SystemClock().now()
    fake.outbound.member_limits = ()
    for m in range(STAFF):
        fake.add_staff(f"staff{m}", f"员工{m}")
    playbook = crash_playbook()
    async with db.sessions.begin() as session:
        catalog = await register(session, {playbook.name: playbook}, now=now)
        for m in range(STAFF):
            await add_staff(session, f"staff{m}", now=now)
        for i in range(ENROLLMENTS):
            external = f"wmStop{i:04d}"
            fake.add_customer(external, f"客户{i}", follow=[f"staff{i % STAFF}"])
            customer = await add_customer(
                session, external, now=now, owner=f"staff{i % STAFF}", name=f"客户{i}"
            )
            result = await enroll(
                session,
                catalog=catalog,
                playbook_name=CRASH_PLAYBOOK,
                customer_id=customer.id,
                key=f"stop:{i}",
                now=now,
                settings=SopSettings(),
                zone_default="Asia/Shanghai",
            )
            assert result.enrollment is not None


async def _count(db: Database, query: Any) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(query) or 0)


def _in(model: Any, column: Any, states: tuple[Any, ...]) -> Any:
    return select(func.count()).select_from(model).where(column.in_(states))


async def _until(db: Database, query: Any, accept: Callable[[int], bool], served: Any) -> int:
    value = -1
    for _ in range(2400):
        value = await _count(db, query)
        if accept(value):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up at {value}:\n{served.output()}")


async def _stop_during_callbacks(served: Served) -> tuple[int, float, list[int | None]]:
    """SIGTERM while a burst of callbacks is being posted: the exit code, the seconds the stop
    took, and each callback's answer (None: refused once the listener closed; the platform
    retries those)."""
    async with aiohttp.ClientSession() as http:

        async def callback(n: int) -> int | None:
            try:
                return await post(http, served.url, staff_text(1000 + n))
            except aiohttp.ClientError:
                return None

        burst = [asyncio.ensure_future(callback(n)) for n in range(30)]
        await asyncio.sleep(0.01)
        code, seconds = await served.stop()
        return code, seconds, list(await asyncio.gather(*burst))


async def _claimed_or_uncertain(db: Database) -> tuple[int, int, int]:
    """Agenda rows running, outbox rows sending, outbox rows uncertain."""
    return (
        await _count(db, _in(AgendaItem, AgendaItem.state, (AgendaState.RUNNING,))),
        await _count(db, _in(OutboxRow, OutboxRow.state, (OutboxState.SENDING,))),
        await _count(db, _in(OutboxRow, OutboxRow.state, (OutboxState.UNCERTAIN,))),
    )


async def test_sigterm_with_work_in_flight_exits_0_in_bounded_time_and_loses_nothing(
    db: Database, tmp_path: Path
) -> None:
    async with running_fake_wecom() as fake:
        _write_playbook(tmp_path / "playbooks")
        await _seed_work(db, fake)
        for api in SENDS:
            fake.delay(api, 0.2)
        config = write_config(
            tmp_path,
            db.url,
            corp_id=fake.corp_id,
            api_base_url=fake.base_url,
            server={"shutdown_seconds": SHUTDOWN_SECONDS},
            delivery={"avoid_rush": None},
        )
        served = await start_serve(config, log=tmp_path / "serve.log")
        try:
            await _until(db, select(func.count()).select_from(StepRun), lambda n: n >= 60, served)
            await until(lambda: len(fake.calls) >= 1, what="sends under way", seconds=60)
        except BaseException:
            served.process.kill()
            raise
        async with aiohttp.ClientSession() as http:
            before = [await post(http, served.url, staff_text(n)) for n in range(3)]
        assert before == [200] * 3
        code, seconds, answers = await _stop_during_callbacks(served)
        calls_at_stop = len(fake.calls)
        assert code == 0, served.output()
        assert seconds < SHUTDOWN_SECONDS + SLACK, served.output()
        log = served.output()
        assert "SIGTERM received" in log and "stopped in" in log and "Traceback" not in log

        # Nothing left claimed, no customer message made uncertain, no callback lost.
        assert await _claimed_or_uncertain(db) == (0, 0, 0), log
        async with db.sessions() as session:
            stored = (await session.scalars(select(InboxRow.payload))).all()
        accepted = [n for n, answer in enumerate(answers) if answer == 200]
        assert all(any(f"hi {1000 + n}" in p for p in stored) for n in accepted)
        assert len(stored) >= 3 + len(accepted)
        open_steps = _in(AgendaItem, AgendaItem.state, (AgendaState.PENDING,))
        unsent = _in(OutboxRow, OutboxRow.state, (OutboxState.PENDING, OutboxState.SENDING))
        assert await _count(db, unsent) > 0, "the stop came after all the work"

        # A worker started afterwards finishes everything, each effect exactly once.
        worker = await start_serve(config, "--role", "worker", log=tmp_path / "worker.log")
        try:
            await _until(db, open_steps, lambda n: n == 0, worker)
            await _until(db, unsent, lambda n: n == 0, worker)
        finally:
            code, _ = await worker.stop()
        assert code == 0, worker.output()
        assert set(await inbox_states(db)) == {InboxState.DONE}
        async with db.sessions() as session:
            runs = (await session.execute(select(StepRun.enrollment_id, StepRun.seq))).all()
            states = (await session.execute(select(OutboxRow.state, OutboxRow.last_error))).all()
        mass_texts = [c.json["text"]["content"] for c in fake.calls_to(SENDS[1])]
    assert len(runs) == len(set(runs)) == ENROLLMENTS * 3
    assert {state for state, _error in states} == {OutboxState.SENT}, states
    assert len(mass_texts) == len(set(mass_texts)) == ENROLLMENTS  # none tried twice
    assert calls_at_stop < len(SENDS) * ENROLLMENTS  # the stop really came mid-way
