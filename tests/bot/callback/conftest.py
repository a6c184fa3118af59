"""A callback server on a real database: config with several apps, bots and accounts, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from sqlalchemy import select

from bot.callback.inbox_writer import InboxWriter
from bot.callback.routes import add_callback_routes
from bot.callback.samples import SignedRequest
from bot.config import AiBot, Config, MpAccount, WecomApp, parse_config
from store.models import InboxRow
from tests.support.clock import ManualClock
from tests.support.database import Database

#: The WeCom documentation's sample corp (加解密方案说明), used as the "sales" app.
CORP_ID = "wx5823bf96d3bd56c7"
CONFIG_DATA = {
    "wecom": {
        "corp_id": CORP_ID,
        "apps": [
            {
                "name": "sales",
                "agent_id": 218,
                "token": "QDG6eK",
                "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            },
            {
                "name": "contacts",
                "token": "contactsToken",
                "encoding_aes_key": "M5h8OCuMfUCTSeNdL+Zqmigi+hEcCJCY5SNyhJaq4y4",
            },
        ],
        "aibots": [
            {
                "name": "helper",
                "token": "aibotToken",
                "encoding_aes_key": "w/13lWz/ztxwmIA7vhopISb+70fHlcksrMOzQ2F4StM",
            }
        ],
    },
    "mp": [
        {
            # WeChat's published Official Account sample (WXBizMsgCrypt).
            "name": "brand",
            "app_id": "wxb11529c136998cb6",
            "token": "pamtest",
            "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        },
        {"name": "plain", "app_id": "wxplainaccount01", "token": "test"},
    ],
}


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG_DATA, environ={})


def wecom_app(config: Config, name: str) -> WecomApp:
    return next(a for a in config.wecom.apps if a.name == name)


def aibot(config: Config, name: str) -> AiBot:
    return next(b for b in config.wecom.aibots if b.name == name)


def mp_account(config: Config, name: str) -> MpAccount:
    return next(a for a in config.mp if a.name == name)


@dataclass
class Ingest:
    """The running callback server, its writer and database."""

    client: TestClient[web.Request, web.Application]
    writer: InboxWriter
    db: Database

    async def send(self, request: SignedRequest) -> ClientResponse:
        return await self.client.request(
            request.method,
            request.path,
            params=request.query,
            data=request.body or None,
            headers=request.headers,
        )

    async def rows(self) -> list[InboxRow]:
        async with self.db.sessions() as session:
            return list((await session.scalars(select(InboxRow).order_by(InboxRow.id))).all())


@pytest.fixture
async def ingest(
    db: Database, clock: ManualClock, config: Config, aiohttp_client: AiohttpClient
) -> AsyncIterator[Ingest]:
    writer = InboxWriter(db.sessions, clock)
    await writer.start()
    app = web.Application()
    add_callback_routes(app, config, writer)
    try:
        yield Ingest(await aiohttp_client(app), writer, db)
    finally:
        await writer.stop()
