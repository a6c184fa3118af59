"""Transient database errors in the engine are retried and are no attempt of a step; a genuine
error still is. On PostgreSQL with a real deadlock (another transaction locking the customer
and the enrollment in the opposite order) and a real killed connection
(``pg_terminate_backend`` of the engine's connection while it waits); on both backends with a
real constraint violation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from sop.engine import executor
from sop.engine.steps.base import StepContext, StepResult
from sop.engine.steps.registry import STEPS
from store.models import AgendaState, EnrollmentState
from tests.sop.engine.conftest import wait_until_blocked
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database

HELLO = [{"send": {"channel": "mass", "text": "Hi {{ customer.name }}"}}]


async def _one_send(h: Harness) -> tuple[int, int]:
    """A marketing send due now (its cap check locks the customer); enrollment, customer."""
    await h.playbook("hello", steps=HELLO)
    customer = await h.customer()
    return await h.enroll("hello", customer), customer


@asynccontextmanager
async def _holding_customer(db: Database, customer: int) -> AsyncIterator[AsyncConnection]:
    """Another transaction, holding the customer's row lock until the block ends."""
    async with db.engine.connect() as other:
        await other.begin()
        await other.execute(
            text("SELECT id FROM customers WHERE id = :id FOR UPDATE"), {"id": customer}
        )
        try:
            yield other
        finally:
            await other.rollback()


async def _ran_once(h: Harness, enrollment: int) -> None:
    """The step ran once, at its first attempt, and left exactly its effects."""
    assert await h.outcomes(enrollment) == [("1", "done")]
    rows = await h.agenda(enrollment)
    assert [(r.state, r.attempts, r.last_error) for r in rows] == [(AgendaState.DONE, 0, None)]
    assert len(await h.outbox()) == 1
    assert len(await h.touches()) == 1
    assert (await h.enrollment(enrollment)).state == EnrollmentState.COMPLETED


async def test_a_deadlock_is_retried_and_is_no_attempt(
    postgres_db: Database, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sop.engine.runner")
    h = Harness(postgres_db, clock)
    enrollment, customer = await _one_send(h)
    async with _holding_customer(postgres_db, customer) as other:
        # The other side detects deadlocks late: the engine, waiting first, is the victim.
        await other.execute(text("SET LOCAL deadlock_timeout = '10s'"))
        engine = asyncio.create_task(h.run())
        await wait_until_blocked(postgres_db)  # the engine holds the enrollment, waits
        # Lock the enrollment the engine holds: a cycle, which PostgreSQL breaks by
        # aborting the engine's transaction (40P01); its retry waits for us to finish.
        await other.execute(
            text("UPDATE enrollments SET updated_at = updated_at WHERE id = :id"),
            {"id": enrollment},
        )
    assert await engine == 1
    await _ran_once(h, enrollment)
    assert "40P01" in caplog.text


async def test_a_killed_connection_is_retried_and_is_no_attempt(
    postgres_db: Database, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sop.engine.runner")
    h = Harness(postgres_db, clock)
    enrollment, customer = await _one_send(h)
    async with _holding_customer(postgres_db, customer) as other:
        engine = asyncio.create_task(h.run())
        await wait_until_blocked(postgres_db)  # mid-transaction: enrollment held, waiting
        waiting = await other.scalar(
            text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
        )
        assert await other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting})
    assert await engine == 1
    await _ran_once(h, enrollment)
    assert "engine transaction" in caplog.text


async def test_a_constraint_violation_is_a_failed_attempt_and_the_others_go_on(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(db, clock)
    await h.playbook("hello", steps=HELLO)
    await h.playbook("broken", steps=[{"tag": "x"}])
    fine = await h.enroll("hello", await h.customer("wm1"))
    broken = await h.enroll("broken", await h.customer("wm2"))

    async def no_such_customer(run: StepContext) -> StepResult:
        """An outbox row for a customer that does not exist: a foreign key violation, which
        surfaces when the transaction's writes are sent."""
        run.enqueue(key=run.key, channel="wecom_tag", recipient="x", payload={}, customer_id=-1)
        return StepResult("done")

    monkeypatch.setattr(executor, "STEPS", {**STEPS, "tag": no_such_customer})
    assert await h.run() == 2

    assert await h.outcomes(fine) == [("1", "done")]
    [row] = await h.agenda(broken)
    assert (row.state, row.attempts) == (AgendaState.PENDING, 1)
    assert "IntegrityError" in (row.last_error or "")
    [trace] = await h.runs(broken)
    assert (trace.outcome, trace.detail["attempt"]) == ("error", 1)
    assert (await h.enrollment(broken)).state == EnrollmentState.ACTIVE
