from __future__ import annotations

import pytest

from tests.bot.processing.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database


@pytest.fixture
def harness(db: Database, clock: ManualClock) -> Harness:
    return Harness(db, clock)
