from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.handlers.registry import build_router
from bot.processing.processor import InboxProcessor
from sop.events import MessageReceived
from store.models import Customer, InboxRow, InboxState, Interaction
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


class Explosive:
    """A subscriber that writes, then fails on the text "boom" while armed."""

    def __init__(self) -> None:
        self.armed = True

    async def __call__(self, session: AsyncSession, event: MessageReceived) -> None:
        session.add(
            Customer(external_userid=f"wmWritten{event.inbox_id}", created_at=event.occurred_at)
        )
        await session.flush()
        if self.armed and event.text == "boom":
            raise RuntimeError("subscriber exploded")


def text(content: str, msg_id: int) -> str:
    return samples.app_message("text", Content=content, msg_id=msg_id)


async def test_failing_row_is_marked_and_the_others_commit(harness: Harness) -> None:
    explosive = Explosive()
    harness.bus.subscribe(MessageReceived, explosive)
    ok1 = await harness.add(text("hello", 1))
    bad = await harness.add(text("boom", 2))
    broken = await harness.add("<xml><MsgType>text</MsgType>")
    ok2 = await harness.add(text("bye", 3))

    assert await harness.processor.run_once() == 4

    rows = {row.id: row for row in await harness.all(InboxRow)}
    assert [rows[i].state for i in (ok1, bad, broken, ok2)] == [
        InboxState.DONE,
        InboxState.FAILED,
        InboxState.FAILED,
        InboxState.DONE,
    ]
    assert rows[bad].error == "builtins.RuntimeError: subscriber exploded"
    assert (rows[broken].error or "").startswith(
        "bot.processing.xmldict.PayloadError: payload is not"
    )
    assert rows[bad].attempts == 1 and rows[ok1].attempts == 1
    # The failed row left nothing behind: no timeline entry, no subscriber write.
    assert {i.inbox_id for i in await harness.timeline()} == {ok1, ok2}
    written = {c.external_userid for c in await harness.all(Customer)}
    assert written == {f"wmWritten{ok1}", f"wmWritten{ok2}"}

    explosive.armed = False
    assert await harness.processor.retry([bad]) == 1
    assert await harness.processor.run_once() == 1
    row = await harness.one(InboxRow, id=bad)
    assert (row.state, row.error, row.attempts) == (InboxState.DONE, None, 2)
    assert len(await harness.timeline(inbox_id=bad)) == 1
    assert await harness.one(InboxRow, id=broken)  # still failed: retry was for one id only
    assert (await harness.one(InboxRow, id=broken)).state is InboxState.FAILED


async def test_retry_all_failed_rows(harness: Harness) -> None:
    ids = [await harness.add("not xml") for _ in range(3)]
    await harness.processor.run_once()
    assert await harness.processor.retry() == 3
    assert {r.state for r in await harness.all(InboxRow)} == {InboxState.PENDING}
    await harness.processor.run_once()
    assert [r.attempts for r in await harness.all(InboxRow)] == [2, 2, 2]
    assert await harness.processor.retry([ids[0], 999]) == 1


async def test_a_row_is_never_processed_twice(harness: Harness) -> None:
    second = InboxProcessor(
        harness.db.sessions, build_router(), harness.bus, harness.clock, batch_size=7
    )
    first = InboxProcessor(
        harness.db.sessions, build_router(), harness.bus, harness.clock, batch_size=7
    )
    for n in range(40):
        await harness.add(text(f"m{n}", n))
    while sum(await asyncio.gather(first.run_once(), second.run_once())):
        pass
    assert await harness.processor.run_once() == 0
    rows = await harness.all(InboxRow)
    assert {r.state for r in rows} == {InboxState.DONE}
    assert {r.attempts for r in rows} == {1}
    assert await harness.count(Interaction) == 40
    assert sorted(e.text for e in harness.published(MessageReceived)) == sorted(
        f"m{n}" for n in range(40)
    )


async def test_rows_are_taken_in_arrival_order_in_batches(harness: Harness) -> None:
    processor = InboxProcessor(
        harness.db.sessions, build_router(), harness.bus, harness.clock, batch_size=2
    )
    for n in range(5):
        await harness.add(text(f"m{n}", n))
    assert [await processor.run_once() for _ in range(4)] == [2, 2, 1, 0]
    assert [e.text for e in harness.published(MessageReceived)] == [f"m{n}" for n in range(5)]


async def test_unknown_type_is_a_raw_timeline_entry(harness: Harness) -> None:
    payload = samples.event("brand_new_event", ExternalUserID="wmCustomer0001", Foo="bar")
    (row_id,) = await harness.feed(payload)
    (entry,) = await harness.timeline()
    assert (entry.kind, entry.inbox_id, entry.seq) == ("raw", row_id, 0)
    assert entry.data["route"] == "wecom:event:brand_new_event"
    assert entry.data["payload"]["Foo"] == "bar"
    customer = await harness.one(Customer, external_userid="wmCustomer0001")
    assert entry.customer_id == customer.id
    assert harness.events == []


async def test_run_forever_wakes_survives_failures_and_stops(harness: Harness) -> None:
    processor = InboxProcessor(
        harness.db.sessions, build_router(), harness.bus, harness.clock, poll_interval=30
    )
    wake, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(processor.run_forever(wake, stop))
    try:
        bad = await harness.add("garbage")
        good = await harness.add(text("after the failure", 1))
        wake.set()
        for _ in range(500):
            states = {r.id: r.state for r in await harness.all(InboxRow)}
            if InboxState.PENDING not in states.values():
                break
            await asyncio.sleep(0.01)
        assert states == {bad: InboxState.FAILED, good: InboxState.DONE}
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert task.done() and task.exception() is None


async def test_contact_events_are_taken_before_a_backlog(harness: Harness) -> None:
    """A welcome waits on its add event: it does not queue behind routine rows."""
    processor = InboxProcessor(
        harness.db.sessions, build_router(), harness.bus, harness.clock, batch_size=5
    )
    for n in range(10):
        await harness.add(text(f"m{n}", n))
    added = await harness.add(samples.external_contact("add_external_contact"))
    assert await processor.run_once() == 5
    assert (await harness.one(InboxRow, id=added)).state is InboxState.DONE
    assert [e.text for e in harness.published(MessageReceived)] == [f"m{n}" for n in range(4)]
