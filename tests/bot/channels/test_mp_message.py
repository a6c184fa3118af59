"""Official Account customer-service messages: only inside the 48-hour window and its quota,
otherwise refused with the reason and never sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import update

from bot.channels import MpMessageChannel
from bot.wechat_mp import MpClient
from sop.delivery import messages
from sop.delivery.channel import Channel
from sop.delivery.messages import mp_channel
from store.models import Customer, Direction, MpFollower, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_mp import FakeMp, running_fake_mp
from tests.support.outbox import SenderFactory, put, row_of, timeline_of

ACCOUNT = "brand"
CHANNEL = mp_channel(ACCOUNT)
SEND = "message/custom/send"


@pytest.fixture
async def fake_mp(clock: ManualClock) -> AsyncIterator[FakeMp]:
    async with running_fake_mp(clock=clock) as fake:
        yield fake


@pytest.fixture
async def channels(
    fake_mp: FakeMp, db: Database, clock: ManualClock
) -> AsyncIterator[list[Channel]]:
    async with aiohttp.ClientSession() as http:
        client = MpClient(
            app_id=fake_mp.app_id,
            secret=fake_mp.secret,
            sessions=db.sessions,
            clock=clock,
            http=http,
            base_url=fake_mp.base_url,
            timeout=5.0,
        )
        yield [MpMessageChannel(client, ACCOUNT, db.sessions, clock)]


async def _follower(
    db: Database,
    openid: str,
    last_message_at: datetime | None,
    *,
    created_at: datetime,
    subscribed: bool = True,
) -> int:
    """A follower known to the store, as the callback handlers leave it; the customer id."""
    async with db.sessions.begin() as session:
        customer = Customer(name=openid, created_at=created_at)
        session.add(customer)
        await session.flush()
        session.add(
            MpFollower(
                account=ACCOUNT,
                openid=openid,
                customer_id=customer.id,
                subscribed=subscribed,
                last_message_at=last_message_at,
            )
        )
        return customer.id


async def _wrote(db: Database, openid: str, at: datetime) -> None:
    """The follower's message reached the store (what the callback handler records)."""
    async with db.sessions.begin() as session:
        await session.execute(
            update(MpFollower).where(MpFollower.openid == openid).values(last_message_at=at)
        )


async def _row(db: Database, clock: ManualClock, key: str, openid: str, customer: int) -> int:
    payload = messages.text(f"您好 ({key})")
    return await put(
        db, clock, key, payload, channel=CHANNEL, recipient=openid, customer_id=customer
    )


async def test_inside_the_window_it_is_sent_and_lands_on_the_timeline(
    db: Database, clock: ManualClock, fake_mp: FakeMp, make_sender: SenderFactory
) -> None:
    fake_mp.receive("oAlice", clock.now())
    customer = await _follower(db, "oAlice", clock.now(), created_at=clock.now())
    news = messages.mp_news(
        "春季新品", "点开看看", "https://example.com/n/1", "https://e.com/p.jpg"
    )
    row_id = await put(
        db, clock, "mp:news", news, channel=CHANNEL, recipient="oAlice", customer_id=customer
    )
    clock.advance(47 * 3600)

    await make_sender().run_once()

    row = await row_of(db, row_id)
    assert row.state is OutboxState.SENT
    [delivery] = fake_mp.delivered_to("oAlice")
    assert delivery.body == {**news, "touser": "oAlice"}
    [entry] = await timeline_of(db, customer)
    assert (entry.direction, entry.kind) == (Direction.OUTBOUND, f"outbox:{CHANNEL}")
    assert entry.summary == "official account brand: [news] 春季新品"


async def test_outside_the_window_the_row_is_expired_with_the_reason_and_not_sent(
    db: Database, clock: ManualClock, fake_mp: FakeMp, make_sender: SenderFactory
) -> None:
    fake_mp.receive("oAlice", clock.now())
    alice = await _follower(db, "oAlice", clock.now(), created_at=clock.now())
    silent = await _follower(db, "oSilent", None, created_at=clock.now())
    late = await _row(db, clock, "mp:late", "oAlice", alice)
    never = await _row(db, clock, "mp:never", "oSilent", silent)
    clock.advance(48 * 3600)

    report = await make_sender().run_once()

    late_row, never_row = await row_of(db, late), await row_of(db, never)
    assert report.expired == 0
    assert (late_row.state, never_row.state) == (OutboxState.EXPIRED, OutboxState.EXPIRED)
    assert "outside the 48-hour window" in (late_row.last_error or "")
    assert "window closed at" in (late_row.last_error or "")
    assert "never wrote" in (never_row.last_error or "")
    assert fake_mp.calls_to(SEND) == []
    assert await timeline_of(db, alice) == []


async def test_the_quota_of_five_is_kept_and_the_sixth_refused_without_a_call(
    db: Database, clock: ManualClock, fake_mp: FakeMp, make_sender: SenderFactory
) -> None:
    fake_mp.receive("oAlice", clock.now())
    alice = await _follower(db, "oAlice", clock.now(), created_at=clock.now())
    first = [await _row(db, clock, f"mp:{n}", "oAlice", alice) for n in range(5)]
    await make_sender().run_once()
    sixth = await _row(db, clock, "mp:6", "oAlice", alice)

    await make_sender().run_once()

    assert {(await row_of(db, i)).state for i in first} == {OutboxState.SENT}
    row = await row_of(db, sixth)
    assert row.state is OutboxState.EXPIRED
    assert "quota used: 5 of 5" in (row.last_error or "")
    assert len(fake_mp.calls_to(SEND)) == 5
    assert len(fake_mp.delivered_to("oAlice")) == 5


async def test_rows_of_one_batch_over_the_quota_are_refused_by_the_platform(
    db: Database, clock: ManualClock, fake_mp: FakeMp, make_sender: SenderFactory
) -> None:
    fake_mp.receive("oAlice", clock.now())
    alice = await _follower(db, "oAlice", clock.now(), created_at=clock.now())
    ids = [await _row(db, clock, f"mp:{n}", "oAlice", alice) for n in range(7)]

    await make_sender().run_once()

    rows = [await row_of(db, i) for i in ids]
    assert sorted(r.state for r in rows).count(OutboxState.SENT) == 5
    refused = [r for r in rows if r.state is not OutboxState.SENT]
    assert [(r.state, r.last_errcode) for r in refused] == [(OutboxState.EXPIRED, 45047)] * 2
    assert len(fake_mp.delivered_to("oAlice")) == 5


async def test_a_window_the_platform_finds_closed_is_recorded_expired(
    db: Database, clock: ManualClock, fake_mp: FakeMp, make_sender: SenderFactory
) -> None:
    fake_mp.receive("oAlice", clock.now() - timedelta(hours=49))
    # The store thinks she just wrote; the platform knows better.
    alice = await _follower(db, "oAlice", clock.now(), created_at=clock.now())
    row_id = await _row(db, clock, "mp:1", "oAlice", alice)

    await make_sender().run_once()

    row = await row_of(db, row_id)
    assert (row.state, row.last_errcode, row.attempts) == (OutboxState.EXPIRED, 45015, 1)
    assert fake_mp.deliveries == []


async def test_an_unfollowed_or_unknown_openid_fails(
    db: Database, clock: ManualClock, fake_mp: FakeMp, make_sender: SenderFactory
) -> None:
    gone = await _follower(db, "oGone", clock.now(), created_at=clock.now(), subscribed=False)
    unfollowed = await _row(db, clock, "mp:gone", "oGone", gone)
    unknown = await put(db, clock, "mp:who", messages.text("hi"), channel=CHANNEL, recipient="oX")

    await make_sender().run_once()

    gone_row, unknown_row = await row_of(db, unfollowed), await row_of(db, unknown)
    assert (gone_row.state, gone_row.last_errcode) == (OutboxState.FAILED, 43004)
    assert unknown_row.state is OutboxState.FAILED
    assert "not a known follower" in (unknown_row.last_error or "")
    assert fake_mp.calls_to(SEND) == []


async def test_a_busy_platform_is_retried(
    db: Database, clock: ManualClock, fake_mp: FakeMp, make_sender: SenderFactory
) -> None:
    fake_mp.receive("oAlice", clock.now())
    alice = await _follower(db, "oAlice", clock.now(), created_at=clock.now())
    fake_mp.fail_next(SEND, -1)
    row_id = await _row(db, clock, "mp:busy", "oAlice", alice)

    await make_sender().run_once()
    assert (await row_of(db, row_id)).state is OutboxState.PENDING
    clock.advance(600)
    await make_sender().run_once()

    assert (await row_of(db, row_id)).state is OutboxState.SENT
    assert [c.errcode for c in fake_mp.calls_to(SEND)] == [-1, 0]


async def test_a_new_message_from_the_follower_reopens_the_quota(
    db: Database, clock: ManualClock, fake_mp: FakeMp, make_sender: SenderFactory
) -> None:
    fake_mp.receive("oAlice", clock.now())
    alice = await _follower(db, "oAlice", clock.now(), created_at=clock.now())
    for n in range(5):
        await _row(db, clock, f"mp:{n}", "oAlice", alice)
    await make_sender().run_once()
    clock.advance(3600)
    fake_mp.receive("oAlice", clock.now())
    await _wrote(db, "oAlice", clock.now())
    row_id = await _row(db, clock, "mp:after", "oAlice", alice)

    await make_sender().run_once()

    assert (await row_of(db, row_id)).state is OutboxState.SENT
    assert len(fake_mp.delivered_to("oAlice")) == 6
