"""Staff app messages stay off the first seconds of :00 and :30; other channels do not wait."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from sop.delivery import messages
from sop.delivery.messages import STAFF_APP, WELCOME
from sop.delivery.rush import RushAvoidance
from store.models import OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, put, put_welcome, row_of

NINE = ManualClock().now().replace(hour=9, minute=0, second=0)


@pytest.mark.parametrize(
    ("at", "nudged"),
    [
        (NINE, True),
        (NINE + timedelta(seconds=4.9), True),
        (NINE + timedelta(minutes=30, seconds=2), True),
        (NINE + timedelta(seconds=5), False),
        (NINE + timedelta(minutes=15), False),
        (NINE + timedelta(minutes=29, seconds=59), False),
        (NINE + timedelta(minutes=31), False),
    ],
)
def test_only_the_first_seconds_of_00_and_30_are_avoided(at: datetime, nudged: bool) -> None:
    later = RushAvoidance(seconds=5, jitter=10).nudge(STAFF_APP, at, random.Random(1))
    if not nudged:
        assert later is None
        return
    assert later is not None
    minute = at.replace(second=0, microsecond=0)
    assert minute + timedelta(seconds=5) <= later <= minute + timedelta(seconds=15)


def test_nudges_spread_over_the_jitter_and_spare_other_channels() -> None:
    rush, rng = RushAvoidance(seconds=5, jitter=10), random.Random(2)
    times = {rush.nudge(STAFF_APP, NINE, rng) for _ in range(20)}
    assert len(times) == 20
    assert rush.nudge(WELCOME, NINE, rng) is None
    with pytest.raises(ValueError, match="0 < seconds < 60"):
        RushAvoidance(seconds=0)


async def test_the_sender_nudges_app_messages_due_at_nine_sharp(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    clock.set(NINE - timedelta(seconds=2))
    early = await put(db, clock, "nudge:early", messages.text("早"))  # due 08:59:58
    clock.set(NINE)
    sharp = await put(db, clock, "nudge:sharp", messages.text("九点"))
    welcome = await put_welcome(db, clock, fake_wecom)
    sender = make_sender(rush=RushAvoidance(seconds=5, jitter=10))

    clock.advance(1)
    report = await sender.run_once()

    assert (report.sent, report.deferred) == (1, 2)
    assert (await row_of(db, welcome)).state is OutboxState.SENT
    for row_id in (early, sharp):
        row = await row_of(db, row_id)
        assert row.state is OutboxState.PENDING
        assert row.attempts == 0
        assert NINE + timedelta(seconds=5) <= row.due_at <= NINE + timedelta(seconds=15)
    clock.set(NINE + timedelta(seconds=15))
    assert (await sender.run_once()).sent == 2
    app = [d for d in fake_wecom.outbound.deliveries if d.api == "message/send"]
    assert len(app) == 2
    assert all(d.at >= NINE + timedelta(seconds=5) for d in app)


async def test_without_rush_avoidance_nine_sharp_goes_at_once(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    clock.set(NINE)
    await put(db, clock, "nudge:sharp", messages.text("九点"))

    assert (await make_sender().run_once()).sent == 1
