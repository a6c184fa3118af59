from __future__ import annotations

from datetime import timedelta

import pytest

from bot.processing.refresh_queue import request_refresh
from store.models import RefreshRequest
from tests.bot.processing.harness import Harness


async def test_requests_are_deduplicated_and_keep_the_earliest_due_time(harness: Harness) -> None:
    clock, start = harness.clock, harness.clock.now()
    async with harness.db.sessions.begin() as session:
        await request_refresh(session, "customer", "wm1", clock, delay=60)
        await request_refresh(session, "customer", "wm1", clock, delay=10)
        await request_refresh(session, "customer", "wm1", clock, delay=120)
        await request_refresh(session, "group", "wr1", clock)
    rows = {(r.kind, r.key): r for r in await harness.all(RefreshRequest)}
    assert len(rows) == 2
    customer = rows[("customer", "wm1")]
    assert customer.due_at == start + timedelta(seconds=10)
    assert customer.version == 3 and customer.attempts == 0
    assert rows[("group", "wr1")].due_at == start


async def test_a_request_in_backoff_keeps_its_backoff(harness: Harness) -> None:
    clock, start = harness.clock, harness.clock.now()
    async with harness.db.sessions.begin() as session:
        session.add(
            RefreshRequest(
                kind="staff",
                key="zhangsan",
                due_at=start + timedelta(minutes=5),
                attempts=2,
                last_error="busy",
                requested_at=start,
            )
        )
    clock.advance(1)
    async with harness.db.sessions.begin() as session:
        await request_refresh(session, "staff", "zhangsan", clock)
    row = await harness.one(RefreshRequest)
    assert (row.due_at, row.attempts, row.version) == (start + timedelta(minutes=5), 2, 2)
    assert row.requested_at == clock.now()


async def test_unknown_kind_is_refused(harness: Harness) -> None:
    async with harness.db.sessions() as session:
        with pytest.raises(ValueError, match="unknown refresh kind 'customers'"):
            await request_refresh(session, "customers", "wm1", harness.clock)
