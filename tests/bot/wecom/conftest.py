"""A factory for extra clients: a second process, another timeout, another secret."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.wecom import WecomClient
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom

ClientFactory = Callable[..., WecomClient]


@pytest.fixture
async def make_client(
    fake_wecom: FakeWecom, db: Database, clock: ManualClock
) -> AsyncIterator[ClientFactory]:
    async with aiohttp.ClientSession() as http:

        def make(**overrides: Any) -> WecomClient:
            options: dict[str, Any] = {
                "base_url": fake_wecom.base_url,
                "corp_id": fake_wecom.corp_id,
                "secret": fake_wecom.secret,
                "credential": "wecom:test",
                "sessions": db.sessions,
                "clock": clock,
                "http": http,
                "timeout": 5.0,
            }
            options.update(overrides)
            return WecomClient(**options)

        yield make
