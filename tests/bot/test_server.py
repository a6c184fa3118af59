"""The whole bot in one process: signed callbacks over HTTP in, customer model and timeline out,
details fetched from the fake WeCom API over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, text

from bot.callback import samples
from bot.callback.samples import SignedRequest
from bot.config import AiBot, Config, MpAccount, WecomApp, WecomConfig
from bot.processing.processor import retry_failed
from bot.server import StartupError, build_app, open_runtime, prepare_database
from sop.events import CustomerAdded, DomainEvent, EventBus
from store.db import create_engine
from store.migrate import head_revision
from store.models import (
    Customer,
    CustomerStaff,
    InboxRow,
    InboxState,
    Interaction,
)
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom

T = TypeVar("T")
Client = TestClient[web.Request, web.Application]
APP = WecomApp(
    name="sales",
    agent_id=1000002,
    secret="fake-secret",
    token="salestoken",
    encoding_aes_key="lKFLyDzaYwAGnAA7TwWX2Otherm4EFyh0oNSEPPTGH4",
)
BOT = AiBot(
    name="helper", token="bottoken", encoding_aes_key="qeokIuoxwG6q8xzu/pPvEAwbOmCucA5emtBx7XFEQvA"
)
MP = MpAccount(name="news", app_id="wxnews000000001", token="mptoken")
CUSTOMER = "wmServerTestCustomer00000000001"


def make_config(db: Database, fake: FakeWecom) -> Config:
    wecom = WecomConfig(
        corp_id=fake.corp_id, api_base_url=fake.base_url, apps=(APP,), aibots=(BOT,)
    )
    return Config(database_url=db.url, wecom=wecom, mp=(MP,))


@pytest.fixture
async def server(
    db: Database, fake_wecom: FakeWecom, clock: ManualClock
) -> AsyncIterator[tuple[Client, list[DomainEvent]]]:
    fake_wecom.add_staff("zhangsan", "张三")
    fake_wecom.add_customer(CUSTOMER, "李女士", follow=["zhangsan"])
    events: list[DomainEvent] = []
    bus = EventBus()

    async def record(_session: object, event: DomainEvent) -> None:
        events.append(event)

    bus.subscribe(DomainEvent, record)
    async with (
        open_runtime(make_config(db, fake_wecom), clock=clock, bus=bus) as runtime,
        TestClient(TestServer(build_app(runtime))) as client,
    ):
        yield client, events


async def send(client: Client, request: SignedRequest) -> tuple[int, str]:
    response = await client.request(
        request.method,
        request.path,
        params=request.query,
        data=request.body,
        headers=request.headers,
    )
    return response.status, await response.text()


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool]) -> T:
    """Poll ``probe`` until ``accept`` says yes; the background loops run meanwhile."""
    value = await probe()
    for _ in range(400):
        if accept(value):
            return value
        await asyncio.sleep(0.025)
        value = await probe()
    raise AssertionError(f"condition never met; last value {value!r}")


def added(clock: ManualClock, nonce: str = "n1") -> SignedRequest:
    plaintext = samples.customer_added_xml(
        corp_id="ww0000fakecorp0001",
        user_id="zhangsan",
        external_user_id=CUSTOMER,
        state="spring_fair",
        welcome_code="WELCOME1",
        create_time=int(clock.now().timestamp()),
    )
    return samples.sign_wecom(
        APP, "ww0000fakecorp0001", plaintext, timestamp=int(clock.now().timestamp()), nonce=nonce
    )


async def test_customer_added_callback_becomes_a_customer_with_details(
    server: tuple[Client, list[DomainEvent]], db: Database, clock: ManualClock
) -> None:
    client, events = server
    assert await send(client, added(clock)) == (200, "")

    async def customer() -> Customer | None:
        async with db.sessions() as session:
            return await session.scalar(
                select(Customer).where(Customer.external_userid == CUSTOMER)
            )

    found = await eventually(customer, lambda c: c is not None and c.name == "李女士")
    assert found is not None
    async with db.sessions() as session:
        link = await session.scalar(select(CustomerStaff))
        kinds = (await session.scalars(select(Interaction.kind))).all()
    assert link is not None and link.staff_userid == "zhangsan"
    assert link.channel_state == "spring_fair"
    assert "customer_added" in kinds
    [event] = [e for e in events if isinstance(e, CustomerAdded)]
    assert event.welcome_code == "WELCOME1" and event.channel_state == "spring_fair"


async def test_same_callback_three_times_concurrently_is_one_row_and_one_entry(
    server: tuple[Client, list[DomainEvent]], db: Database, clock: ManualClock
) -> None:
    client, events = server
    request = added(clock)
    answers = await asyncio.gather(*(send(client, request) for _ in range(3)))
    assert answers == [(200, "")] * 3

    async def done() -> list[InboxState]:
        async with db.sessions() as session:
            return list((await session.scalars(select(InboxRow.state))).all())

    assert await eventually(done, lambda states: states == [InboxState.DONE])
    async with db.sessions() as session:
        entries = await session.scalar(
            select(func.count())
            .select_from(Interaction)
            .where(Interaction.kind == "customer_added")
        )
    assert entries == 1
    assert len([e for e in events if isinstance(e, CustomerAdded)]) == 1


async def test_forged_callback_is_refused_and_stores_nothing(
    server: tuple[Client, list[DomainEvent]], db: Database, clock: ManualClock
) -> None:
    client, _ = server
    request = added(clock)
    forged = SignedRequest(
        request.method,
        request.path,
        {**request.query, "msg_signature": "0" * 40},
        request.body,
        request.content_type,
    )
    status, _ = await send(client, forged)
    assert status == 403
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxRow)) == 0


async def test_unprocessable_row_is_kept_failed_then_retried(
    server: tuple[Client, list[DomainEvent]], db: Database, clock: ManualClock
) -> None:
    client, _ = server
    # Decrypts and verifies, but is not a WeCom message: stored, then fails in processing.
    broken = samples.sign_wecom(
        APP, "ww0000fakecorp0001", "<xml><MsgType>text", timestamp=1, nonce="x"
    )
    assert (await send(client, broken))[0] == 200
    assert (await send(client, added(clock, nonce="n2")))[0] == 200

    async def states() -> list[tuple[InboxState, str | None]]:
        async with db.sessions() as session:
            rows = await session.execute(
                select(InboxRow.state, InboxRow.error).order_by(InboxRow.id)
            )
            return [(s, e) for s, e in rows.all()]

    result = await eventually(states, lambda s: all(st is not InboxState.PENDING for st, _ in s))
    assert result[0][0] is InboxState.FAILED and result[0][1]
    assert result[1][0] is InboxState.DONE
    assert await retry_failed(db.sessions) == 1
    # The payload is still broken: it fails again, with its error kept for inspection.
    result = await eventually(states, lambda s: s[0][0] is InboxState.FAILED)
    async with db.sessions() as session:
        attempts = await session.scalar(select(InboxRow.attempts).where(InboxRow.id == 1))
    assert attempts == 2


async def test_postgres_behind_head_refuses_to_start(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    set_version = text("UPDATE alembic_version SET version_num = :v")
    try:
        async with engine.begin() as conn:
            await conn.execute(set_version, {"v": "0000"})
        with pytest.raises(StartupError, match="scrm db upgrade"):
            await prepare_database(engine, postgres_url)
    finally:
        async with engine.begin() as conn:
            await conn.execute(set_version, {"v": head_revision()})
        await engine.dispose()
