"""The Official Account client against the fake Official Account API, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.wechat_mp import MpClient
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_mp import FakeMp, running_fake_mp


@pytest.fixture
async def fake_mp(clock: ManualClock) -> AsyncIterator[FakeMp]:
    async with running_fake_mp(clock=clock) as fake:
        yield fake


@pytest.fixture
async def mp_client(fake_mp: FakeMp, db: Database, clock: ManualClock) -> AsyncIterator[MpClient]:
    async with aiohttp.ClientSession() as http:
        yield MpClient(
            app_id=fake_mp.app_id,
            secret=fake_mp.secret,
            sessions=db.sessions,
            clock=clock,
            http=http,
            base_url=fake_mp.base_url,
            timeout=5.0,
        )
