"""Several processors on one PostgreSQL database: each row once, each subject's rows in order,
no deadlock between them, and a transient error retried instead of failing the row."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.handlers.registry import build_router
from bot.processing.processor import InboxProcessor
from sop.events import MessageReceived
from store.db import create_engine, session_factory
from store.lane_leases import AdvisoryLaneLeases
from store.models import Customer, InboxRow, InboxState, Interaction
from store.models.inbox import LANES
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database, deadlocks

CHANGES = ("add_external_contact", "edit_external_contact", "del_follow_user")


async def test_three_processors_keep_each_customers_order(postgres_db: Database) -> None:
    harness = Harness(postgres_db, ManualClock())
    rng = random.Random(7)
    for n in range(600):
        customer = f"wmCustomer{rng.randrange(40):04d}"
        staff = f"staff{rng.randrange(5)}"
        change = CHANGES[n % 3] if n >= 40 else "add_external_contact"
        await harness.add(
            samples.external_contact(change, userid=staff, external_userid=customer, at=n)
        )
    engines = [create_engine(postgres_db.url) for _ in range(3)]
    processors = [
        InboxProcessor(
            session_factory(engine),
            build_router(),
            harness.bus,
            harness.clock,
            batch_size=20,
            lanes=AdvisoryLaneLeases(engine, LANES, rebalance_seconds=0, rng=random.Random(i)),
        )
        for i, engine in enumerate(engines)
    ]
    before = await deadlocks(postgres_db)
    try:

        async def pending() -> int:
            return sum(r.state is InboxState.PENDING for r in await harness.all(InboxRow))

        for _ in range(200):  # lanes move while the processors rebalance: until none pending
            await asyncio.gather(*(p.run_once() for p in processors))
            if not await pending():
                break
    finally:
        for processor in processors:
            await processor.lanes.close()
        for engine in engines:
            await engine.dispose()
    rows = await harness.all(InboxRow)
    assert {(r.state, r.attempts) for r in rows} == {(InboxState.DONE, 1)}
    # Each customer's timeline was written in the order its callbacks arrived.
    by_customer: dict[int | None, list[int]] = defaultdict(list)
    for entry in await harness.timeline():
        by_customer[entry.customer_id].append(entry.inbox_id or 0)
    assert len(by_customer) == 40
    assert all(ids == sorted(ids) for ids in by_customer.values())
    assert await deadlocks(postgres_db) == before


async def test_a_processor_takes_only_rows_of_its_lanes(postgres_db: Database) -> None:
    harness = Harness(postgres_db, ManualClock())
    for n in range(50):
        await harness.add(samples.external_contact(CHANGES[0], external_userid=f"wm{n:03d}"))
    engine = create_engine(postgres_db.url)
    leases = AdvisoryLaneLeases(engine, LANES, rebalance_seconds=3600)
    other = AdvisoryLaneLeases(postgres_db.engine, LANES, rebalance_seconds=3600)
    processor = InboxProcessor(
        session_factory(engine), build_router(), harness.bus, harness.clock, lanes=leases
    )
    try:
        await other.rebalance()  # another processor owns every lane
        await leases.rebalance()  # this one finds none free
        assert await processor.run_once() == 0
        await other.close()
        await leases.rebalance()
        assert await processor.run_once() == 50
    finally:
        await leases.close()
        await other.close()
        await engine.dispose()


class Deadlocker:
    """A subscriber whose first call deadlocks with another transaction, for real: it locks
    customer A, lets the other transaction lock B and reach for A, then reaches for B."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.calls = 0
        self.other: asyncio.Task[None] | None = None

    async def __call__(self, session: AsyncSession, event: MessageReceived) -> None:
        self.calls += 1
        await session.execute(
            update(Customer).where(Customer.external_userid == "wmA").values(name="p")
        )
        if self.calls > 1:
            return
        holding_b = asyncio.Event()
        self.other = asyncio.create_task(self._other(holding_b))
        await holding_b.wait()
        await asyncio.sleep(0.2)  # the other transaction is now waiting for A
        await session.execute(
            update(Customer).where(Customer.external_userid == "wmB").values(name="p")
        )

    async def _other(self, holding_b: asyncio.Event) -> None:
        async with self.db.sessions.begin() as session:
            # The processor must be the one PostgreSQL picks: it checks for deadlocks first.
            await session.execute(text("SET LOCAL deadlock_timeout = '20s'"))
            await session.execute(
                update(Customer).where(Customer.external_userid == "wmB").values(name="o")
            )
            holding_b.set()
            await session.execute(
                update(Customer).where(Customer.external_userid == "wmA").values(name="o")
            )


async def test_a_deadlocked_batch_is_run_again_not_failed(postgres_db: Database) -> None:
    harness = Harness(postgres_db, ManualClock())
    async with postgres_db.sessions.begin() as session:
        session.add_all(
            [Customer(external_userid=k, created_at=harness.clock.now()) for k in ("wmA", "wmB")]
        )
    deadlocker = Deadlocker(postgres_db)
    harness.bus.subscribe(MessageReceived, deadlocker)
    before = await deadlocks(postgres_db)
    row = await harness.add(samples.app_message("text", Content="hello", msg_id=1))
    assert await harness.processor.run_once() == 1
    assert deadlocker.other is not None
    await deadlocker.other
    assert await deadlocks(postgres_db) == before + 1
    assert deadlocker.calls == 2
    done = await harness.one(InboxRow, id=row)
    assert (done.state, done.attempts, done.error) == (InboxState.DONE, 1, None)
    assert len(await harness.all(Interaction, inbox_id=row)) == 1


async def test_a_constraint_violation_still_fails_the_row(harness: Harness) -> None:
    async def duplicate(session: AsyncSession, event: MessageReceived) -> None:
        session.add(Customer(external_userid="wmTwice", created_at=event.occurred_at))
        await session.flush()

    harness.bus.subscribe(MessageReceived, duplicate)
    first = await harness.add(samples.app_message("text", Content="one", msg_id=1))
    second = await harness.add(samples.app_message("text", Content="two", msg_id=2))
    assert await harness.processor.run_once() == 2
    assert (await harness.one(InboxRow, id=first)).state is InboxState.DONE
    failed = await harness.one(InboxRow, id=second)
    assert (failed.state, failed.attempts) == (InboxState.FAILED, 1)
    assert "IntegrityError" in (failed.error or "")
