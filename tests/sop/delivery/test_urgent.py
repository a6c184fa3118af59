"""A welcome code lives 20 seconds: welcome rows never queue behind a backlog of bulk rows."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta

from sop.delivery import RateLimits, messages
from store.models import OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, put, put_welcome, row_of, until

SEND, WELCOME_API = "message/send", "externalcontact/send_welcome_msg"
BACKLOG, CONCURRENCY = 300, 4


async def _backlog(db: Database, clock: ManualClock) -> None:
    """Staff nudges due an hour ago, ahead of anything due now by ``due_at``."""
    for n in range(BACKLOG):
        due = clock.now() - timedelta(hours=1)
        await put(db, clock, f"nudge:{n}", messages.text(f"#{n}"), due_at=due)


def _sends_before_welcome(fake: FakeWecom) -> int:
    paths = [c.path for c in fake.calls if c.path in (SEND, WELCOME_API)]
    return paths.index(WELCOME_API)


def _sent(fake: FakeWecom, calls: int) -> bool:
    return len(fake.calls_to(SEND)) >= calls


async def test_a_welcome_is_claimed_ahead_of_an_older_backlog(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    await _backlog(db, clock)
    row_id = await put_welcome(db, clock, fake_wecom)
    sender = make_sender(batch_size=100, concurrency=CONCURRENCY, limits=RateLimits.unlimited())

    await sender.run_once()

    assert (await row_of(db, row_id)).state is OutboxState.SENT
    assert _sends_before_welcome(fake_wecom) == 0  # the first call of the first batch


async def test_a_welcome_enqueued_during_a_drain_overtakes_the_rows_already_claimed(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    await _backlog(db, clock)
    fake_wecom.delay(SEND, 0.02)
    sender = make_sender(
        batch_size=100,
        concurrency=CONCURRENCY,
        limits=RateLimits.unlimited(),
        idle_seconds=30,
    )
    wake, stopping = asyncio.Event(), asyncio.Event()
    running = asyncio.ensure_future(sender.run_forever(wake, stopping))
    await until(functools.partial(_sent, fake_wecom, 20), what="the backlog being sent")
    row_id = await put_welcome(db, clock, fake_wecom)
    enqueued_after = len(fake_wecom.calls_to(SEND))
    wake.set()  # what the inbox processor does after a batch that queued a welcome
    await until(lambda: bool(fake_wecom.calls_to(WELCOME_API)), what="the welcome")
    stopping.set()
    await asyncio.wait_for(running, timeout=30)

    overtaken = _sends_before_welcome(fake_wecom) - enqueued_after
    # Some sends started while the welcome was claimed and its slot freed; the rest of the
    # claimed batch (dozens of rows) and the backlog behind it waited.
    assert overtaken <= 3 * CONCURRENCY, overtaken
    assert len(fake_wecom.calls_to(SEND)) < BACKLOG
    assert (await row_of(db, row_id)).state is OutboxState.SENT
