"""Three real ``scrm serve`` processes on one PostgreSQL database, with the fake WeCom.

A few hundred customers are added through the ``expo2026`` channel code and then do a few more
things (their details change, they join groups, staff write to the app), 2,000+ signed callbacks
in all, sent concurrently to every process, a fifth of them to two processes at once. Half way
through one process is killed with SIGKILL and started again. Then: every accepted callback was
processed exactly once, no row failed, every customer's onboarding ran each step once, no
customer got a welcome twice (the fake's record), every welcome went out inside its 20-second
window, and every staff nudge was sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy import func, select

from bot.callback.samples import (
    contact_changed_xml,
    customer_added_xml,
    group_join_xml,
    staff_text_xml,
)
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import (
    AgendaItem,
    AgendaState,
    Enrollment,
    InboxRow,
    InboxState,
    OutboxRow,
    OutboxState,
    StepRun,
    Task,
)
from tests.support.cluster import APP, Cluster, Platform, cluster, write_config
from tests.support.database import POSTGRES_ADMIN_URL, _postgres_admin
from tests.support.fake_wecom import FakeWecom, running_fake_wecom

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CUSTOMERS = 300
STAFF = 20
GROUPS = 30
STAFF_MESSAGES = 1200
PLAYBOOK = """\
name: onboarding
description: 展会渠道新客户：欢迎语，然后提醒跟进人
marketing: false
reentry: never
trigger:
  event: customer_added
  channel: [expo2026]
steps:
  - id: welcome
    send:
      channel: welcome
      template: onboarding_welcome.j2
  - id: first_call
    nudge:
      title: 新客户首次跟进
      script: {template: onboarding_follow_up.j2}
      due: 4h
  - stop: true
"""


@asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str]:
    name = f"{prefix}_{random.randrange(16**8):08x}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    engine = create_engine(url)
    try:
        await upgrade(engine)
        await engine.dispose()
        yield url
    finally:
        await engine.dispose()
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def customer_id(n: int) -> str:
    return f"wmScale{n:05d}AAAAAAAAAAAA"


def staff_of(n: int) -> str:
    return f"staff{n % STAFF:02d}"


def journeys(fake: FakeWecom, rng: random.Random) -> list[list[str]]:
    """Each customer's callbacks in the order they happen (the add first); staff messages
    are journeys of their own."""
    now = int(time.time())
    result = []
    for n in range(CUSTOMERS):
        customer, staff = customer_id(n), staff_of(n)
        fake.add_customer(customer, f"客户{n}", follow=[staff])
        steps = [("added", n)]
        steps.append(("joined", n))
        steps.append(("edited", n))
        result.append([_callback(fake, kind, n, now) for kind, n in steps])
    for m in range(STAFF_MESSAGES):
        text = staff_text_xml(
            corp_id=fake.corp_id,
            user_id=staff_of(rng.randrange(STAFF)),
            agent_id=APP.agent_id or 0,
            content=f"今天第{m}条",
            msg_id=10_000_000 + m,
            create_time=now,
        )
        result.append([text])
    return result


def _callback(fake: FakeWecom, kind: str, n: int, now: int) -> str:
    customer, staff = customer_id(n), staff_of(n)
    if kind == "added":
        return f"ADD:{n}"  # its welcome code is issued when it is sent (20 s from then)
    if kind == "joined":
        return group_join_xml(
            corp_id=fake.corp_id,
            chat_id=f"wrScaleGroup{n % GROUPS:03d}",
            member_ids=[customer],
            create_time=now,
        )
    return contact_changed_xml(
        corp_id=fake.corp_id,
        change_type="edit_external_contact",
        user_id=staff,
        external_user_id=customer,
        create_time=now,
    )


async def run_journey(platform: Platform, fake: FakeWecom, steps: list[str]) -> None:
    for step in steps:
        callback = step
        if step.startswith("ADD:"):
            n = int(step[4:])
            code = fake.add_welcome_code(customer_id(n), staff_of(n))
            callback = customer_added_xml(
                corp_id=fake.corp_id,
                user_id=staff_of(n),
                external_user_id=customer_id(n),
                state="expo2026",
                welcome_code=code,
                create_time=int(time.time()),
            )
        await platform.send(callback)


@dataclass
class ScaleWorld:
    """A scratch database, the fake WeCom with the corp's staff and groups, a configuration
    for ``scrm serve`` with the test's onboarding playbook, and the customers' journeys."""

    url: str
    fake: FakeWecom
    http: aiohttp.ClientSession
    config: Path
    journeys: list[list[str]]


@asynccontextmanager
async def scale_world(tmp_path: Path, seed: int) -> AsyncIterator[ScaleWorld]:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "onboarding.yaml").write_text(PLAYBOOK, encoding="utf-8")
    async with (
        scratch_database("scrm_scale") as url,
        running_fake_wecom() as fake,
        aiohttp.ClientSession() as http,
    ):
        for n in range(STAFF):
            fake.add_staff(staff_of(n), f"员工{n}")
        for g in range(GROUPS):
            fake.add_group(f"wrScaleGroup{g:03d}", f"群{g}", owner=staff_of(g))
        config = write_config(
            tmp_path,
            database_url=url,
            corp_id=fake.corp_id,
            api_base_url=fake.base_url,
            playbooks=playbooks,
        )
        yield ScaleWorld(url, fake, http, config, journeys(fake, random.Random(seed)))


async def drained(url: str, *, within: float, cluster: Cluster) -> None:
    """Wait until nothing is pending: inbox, agenda, outbox."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    deadline = time.monotonic() + within
    try:
        while True:
            async with sessions() as session:
                inbox = await session.scalar(
                    select(func.count()).where(InboxRow.state == InboxState.PENDING)
                )
                agenda = await session.scalar(
                    select(func.count()).where(
                        AgendaItem.state.in_([AgendaState.PENDING, AgendaState.RUNNING])
                    )
                )
                outbox = await session.scalar(
                    select(func.count()).where(
                        OutboxRow.state.in_([OutboxState.PENDING, OutboxState.SENDING])
                    )
                )
            if not (inbox or agenda or outbox):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not drained after {within} s: {inbox} inbox, {agenda} agenda, "
                    f"{outbox} outbox rows pending\n{cluster.logs()}"
                )
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("roles", "victim"),
    [(("web", "web", "worker"), 2), (("all", "all", "all"), 1)],
    ids=["two-web-one-worker", "three-all"],
)
async def test_processes_share_the_work_and_lose_nothing(
    tmp_path: Path, postgres_url: str, roles: tuple[str, ...], victim: int
) -> None:
    del postgres_url  # needs the server; the test makes its own database
    rng = random.Random(12)
    async with scale_world(tmp_path, seed=12) as world:
        url, fake, http, all_journeys = world.url, world.fake, world.http, world.journeys
        with cluster(tmp_path, world.config, roles) as running:
            await running.start(http)
            platform = Platform(running, http, fake.corp_id, rng=rng)
            tasks = [asyncio.ensure_future(run_journey(platform, fake, j)) for j in all_journeys]
            killed = running.processes[victim]
            while sum(d.accepted for d in platform.delivered) < len(all_journeys) // 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            killed.kill()  # SIGKILL half way: whatever it held, nothing is lost or done twice
            killed.start()
            await asyncio.gather(*tasks)
            await killed.ready(http)
            await drained(url, within=120, cluster=running)
            logs = running.logs()
            assert await running.stop() == [0] * len(roles), running.logs()
        await check(url, fake, platform, logs)


async def check(url: str, fake: FakeWecom, platform: Platform, logs: str) -> None:
    delivered = platform.delivered
    assert all(d.accepted for d in delivered), [d.statuses for d in delivered if not d.accepted]
    assert len(delivered) >= 2000
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.execute(select(InboxRow.state, InboxRow.attempts))).all()
            # Every accepted callback once, processed once, none failed.
            assert len(rows) == len(delivered), logs
            assert Counter(rows) == {(InboxState.DONE, 1): len(delivered)}, logs
            enrollments = (await session.scalars(select(Enrollment))).all()
            assert len(enrollments) == CUSTOMERS
            runs = Counter(
                (r.enrollment_id, r.step_id)
                for r in (await session.scalars(select(StepRun))).all()
                if r.step_id
            )
            assert set(runs.values()) == {1}, "a step ran twice"
            assert len(runs) == CUSTOMERS * 3, runs  # welcome, first_call, stop
            outbox = (await session.scalars(select(OutboxRow))).all()
            states = Counter((row.channel, row.state) for row in outbox)
            assert states[("wecom_welcome", OutboxState.SENT)] == CUSTOMERS, (states, logs)
            tasks = (await session.scalars(select(Task))).all()
            assert len(tasks) == CUSTOMERS
    finally:
        await engine.dispose()
    welcomes = Counter(
        d.to for d in fake.outbound.deliveries if d.api == "externalcontact/send_welcome_msg"
    )
    assert len(welcomes) == CUSTOMERS and set(welcomes.values()) == {1}, "a welcome twice"
    cards = Counter(d.to for d in fake.outbound.deliveries if d.api == "message/send")
    nudged = Counter(staff_of(n) for n in range(CUSTOMERS))
    assert all(cards[staff] >= count for staff, count in nudged.items()), (cards, nudged)


async def terminate_connections(url: str) -> int:
    """What a PostgreSQL restart does to a server's connections: every one of them ends."""
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await conn.close()
    return len(killed)


async def test_a_worker_recovers_from_lost_database_connections(
    tmp_path: Path, postgres_url: str
) -> None:
    del postgres_url
    rng = random.Random(5)
    async with scale_world(tmp_path, seed=5) as world:
        url, fake, http, all_journeys = world.url, world.fake, world.http, world.journeys
        with cluster(tmp_path, world.config, ("all",)) as running:
            await running.start(http)
            platform = Platform(running, http, fake.corp_id, rng=rng, duplicate_share=0)
            outages: list[int] = []

            async def outage_every(seconds: float) -> None:
                while True:
                    await asyncio.sleep(seconds)
                    outages.append(await terminate_connections(url))

            breaker = asyncio.ensure_future(outage_every(0.5))
            tasks = [asyncio.ensure_future(run_journey(platform, fake, j)) for j in all_journeys]
            await asyncio.gather(*tasks)
            await asyncio.sleep(3)  # and while the backlog is worked off
            breaker.cancel()
            await drained(url, within=120, cluster=running)
            assert sum(1 for killed in outages if killed) >= 5
            assert await running.stop() == [0], running.logs()
        await check(url, fake, platform, running.logs())
