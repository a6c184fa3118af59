"""Fixtures for the bot's tests: the fake WeCom API server and a client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.wecom import WecomClient
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom, running_fake_wecom


@pytest.fixture
async def fake_wecom(clock: ManualClock) -> AsyncIterator[FakeWecom]:
    """A started fake WeCom API on the test's manual clock (tokens expire as it advances)."""
    async with running_fake_wecom(clock=clock) as fake:
        yield fake


@pytest.fixture
async def wecom_client(
    fake_wecom: FakeWecom, db: Database, clock: ManualClock
) -> AsyncIterator[WecomClient]:
    """A client of the fake, sharing its token through the test's database."""
    async with aiohttp.ClientSession() as http:
        yield WecomClient(
            base_url=fake_wecom.base_url,
            corp_id=fake_wecom.corp_id,
            secret=fake_wecom.secret,
            credential="wecom:test",
            sessions=db.sessions,
            clock=clock,
            http=http,
            timeout=5.0,
        )
