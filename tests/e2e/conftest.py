"""The end-to-end world for each example playbook, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.e2e import ZONE, World, running_world

SHANGHAI = ZoneInfo(ZONE)


def local(day: int, hour: int, minute: int = 0, *, month: int = 11) -> datetime:
    """A Shanghai wall-clock time in 2026 (the manual clock starts 2026-11-23 17:00 there)."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
async def world(db: Database, clock: ManualClock) -> AsyncIterator[World]:
    async with running_world(db, clock) as running:
        yield running
