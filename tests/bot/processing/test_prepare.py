"""A batch is prepared once (parsed, what it names read or created up front) and its rows run
as units: what a failing row changed in the batch's records is taken back, what it made is
never written, and the rows after it see the batch as if it had never run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.handlers.registry import build_router
from bot.processing.processor import MIN_BATCH, InboxProcessor
from sop.events import CustomerAdded, CustomerRemoved, DomainEvent, MessageReceived
from store.batch import Batch
from store.models import (
    Customer,
    CustomerStaff,
    FollowState,
    GroupMember,
    InboxRow,
    InboxState,
    Interaction,
    Staff,
)
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


class Exploding:
    """Fails the rows whose event says ``bad`` (after the handler changed the records)."""

    def __init__(self, bad: set[tuple[str, str]]) -> None:
        self.bad = bad

    async def __call__(self, _session: AsyncSession, event: DomainEvent) -> None:
        if isinstance(event, CustomerAdded | CustomerRemoved):
            key = (type(event).__name__, event.external_userid)
            if key in self.bad:
                self.bad.discard(key)
                raise RuntimeError(f"{key} explodes")


async def states(harness: Harness) -> list[InboxState]:
    return [row.state for row in await harness.all(InboxRow)]


async def test_a_failing_row_gives_back_the_records_it_changed_and_made(harness: Harness) -> None:
    harness.bus.subscribe(
        DomainEvent,
        Exploding({("CustomerRemoved", "wmA"), ("CustomerAdded", "wmB")}),
        batched=True,
    )
    for payload in (
        samples.external_contact("add_external_contact", external_userid="wmA"),
        samples.external_contact("del_follow_user", external_userid="wmA"),  # fails
        samples.external_contact("edit_external_contact", external_userid="wmA"),
        samples.external_contact("add_external_contact", external_userid="wmB", userid="lisi"),
        samples.members_changed("add_member", ["wmB"]),
    ):
        await harness.add(payload)
    assert await harness.processor.run_once() == 5

    assert await states(harness) == [
        InboxState.DONE,
        InboxState.FAILED,
        InboxState.DONE,
        InboxState.FAILED,
        InboxState.DONE,
    ]
    follow = await harness.one(CustomerStaff)  # B's relationship was never written
    a = await harness.one(Customer, external_userid="wmA")
    assert (follow.customer_id, follow.staff_userid) == (a.id, "zhangsan")
    assert (follow.state, follow.removed_at, follow.removed_by) == (FollowState.ACTIVE, None, None)
    assert [e.kind for e in await harness.timeline()] == [
        "customer_added",
        "customer_edited",
        "joined_group",
    ]
    # Bare rows named by the batch are made up front, for every row: B and lisi exist.
    assert await harness.one(Customer, external_userid="wmB")
    assert {s.userid for s in await harness.all(Staff)} == {"zhangsan", "lisi"}
    assert (await harness.one(GroupMember)).joined_at is not None


async def test_a_relationship_made_by_a_later_row_is_not_there_for_an_earlier_one(
    harness: Harness,
) -> None:
    """Arrival order: what a row makes exists from that row on, not from the batch's start."""
    seen: list[int] = []

    async def count_follows(session: AsyncSession, _event: CustomerAdded) -> None:
        seen.append(await session.scalar(select(func.count()).select_from(CustomerStaff)) or 0)

    harness.bus.subscribe(CustomerAdded, count_follows)
    await harness.feed(
        samples.external_contact("add_external_contact", external_userid="wmA"),
        samples.external_contact("add_external_contact", external_userid="wmA", userid="lisi"),
    )
    assert seen == [1, 2]


class DuplicateStaff:
    """A deferred write that fails at the flush for the row whose text is ``dup``."""

    order = 1

    def write(self, connection: Connection, items: list[str]) -> None:
        rows = [{"userid": "zhangsan", "departments": [], "created_at": i} for i in items]
        connection.execute(insert(cast(Table, Staff.__table__)), rows)


async def test_a_batch_whose_flush_fails_is_replayed_row_by_row(harness: Harness) -> None:
    write = DuplicateStaff()

    async def deferring(session: AsyncSession, event: MessageReceived) -> None:
        batch = Batch.of(session)
        assert batch is not None
        if event.text == "dup":
            batch.defer(write, cast(Any, event.occurred_at))

    harness.bus.subscribe(MessageReceived, deferring, batched=True)
    await harness.add(samples.external_contact("add_external_contact"))  # makes zhangsan
    await harness.add(samples.app_message("text", Content="fine", msg_id=1))
    await harness.add(samples.app_message("text", Content="dup", msg_id=2))
    await harness.add(samples.app_message("text", Content="fine too", msg_id=3))
    assert await harness.processor.run_once() == 4
    assert await states(harness) == [
        InboxState.DONE,
        InboxState.DONE,
        InboxState.FAILED,
        InboxState.DONE,
    ]
    assert await harness.count(Interaction) == 3


async def test_a_batch_ends_when_its_time_is_up_and_the_rest_waits(harness: Harness) -> None:
    processor = InboxProcessor(
        harness.db.sessions, build_router(), harness.bus, harness.clock, batch_seconds=1
    )

    async def slow(_session: AsyncSession, _event: MessageReceived) -> None:
        harness.clock.advance(timedelta(seconds=0.6))

    harness.bus.subscribe(MessageReceived, slow, batched=True)
    for n in range(MIN_BATCH + 4):
        await harness.add(samples.app_message("text", Content=f"m{n}", msg_id=n))
    # Its time is up after two rows, but a batch takes at least MIN_BATCH of them.
    assert await processor.run_once() == MIN_BATCH
    assert processor.more_pending
    assert await states(harness) == [InboxState.DONE] * MIN_BATCH + [InboxState.PENDING] * 4
    assert await processor.run_once() == 4
    assert await processor.run_once() == 0 and not processor.more_pending
    texts = [e.text for e in harness.published(MessageReceived)]
    assert texts == [f"m{n}" for n in range(MIN_BATCH + 4)]


async def test_a_row_whose_ids_the_database_refuses_fails_alone(harness: Harness) -> None:
    """The batch's look-ups up front fail for everyone (PostgreSQL refuses an id longer than
    its column); replayed row by row, only that row fails."""
    too_long = "wm" + "x" * 80
    await harness.add(samples.external_contact("add_external_contact", external_userid="wmA"))
    await harness.add(samples.external_contact("add_external_contact", external_userid=too_long))
    await harness.add(samples.external_contact("add_external_contact", external_userid="wmC"))
    assert await harness.processor.run_once() == 3
    refused = harness.db.backend == "postgres"  # SQLite does not enforce VARCHAR lengths
    assert await states(harness) == [
        InboxState.DONE,
        InboxState.FAILED if refused else InboxState.DONE,
        InboxState.DONE,
    ]
    assert {c.external_userid for c in await harness.all(Customer)} == (
        {"wmA", "wmC"} if refused else {"wmA", too_long, "wmC"}
    )
