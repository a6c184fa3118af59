"""The sender against the fake WeCom server: retries, failures, tokens, limits, crashes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sop.delivery import RateLimits, RetryPolicy, Verdict, messages
from sop.delivery.messages import WELCOME, welcome_expires_at
from store.models import OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, add_customer, put, put_welcome, row_of, until

SEND = "message/send"
WELCOME_API = "externalcontact/send_welcome_msg"


async def test_transient_faults_are_retried_until_sent(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put(db, clock, "nudge:1", messages.text("回访"))
    fake_wecom.fail_next(SEND, -1)
    fake_wecom.fail_next(SEND, 45009)
    fake_wecom.http_status_next(SEND, 503)
    fake_wecom.drop_next(SEND)
    sender = make_sender()

    seen = []
    for _ in range(5):
        await sender.run_once()
        row = await row_of(db, row_id)
        seen.append((row.state, row.last_errcode))
        assert row.due_at - clock.now() < timedelta(seconds=20)  # backoff stays short
        clock.advance(60)

    assert seen == [
        (OutboxState.PENDING, -1),
        (OutboxState.PENDING, 45009),
        (OutboxState.PENDING, None),
        (OutboxState.PENDING, None),
        (OutboxState.SENT, None),
    ]
    assert (await row_of(db, row_id)).attempts == 5
    assert len(fake_wecom.outbound.delivered_to("zhangsan")) == 1


async def test_a_row_is_not_retried_before_its_backoff(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put(db, clock, "nudge:1", messages.text("回访"))
    fake_wecom.fail_next(SEND, -1)
    sender = make_sender()
    await sender.run_once()

    assert (await sender.run_once()).claimed == 0
    clock.set((await row_of(db, row_id)).due_at)
    assert (await sender.run_once()).sent == 1


async def test_transient_errors_beyond_the_limit_fail_the_row(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put(db, clock, "nudge:1", messages.text("回访"))
    fake_wecom.fail_next(SEND, -1, times=3)
    sender = make_sender(retry=RetryPolicy(max_attempts=3))

    for _ in range(4):
        await sender.run_once()
        clock.advance(600)

    row = await row_of(db, row_id)
    assert (row.state, row.attempts, row.last_errcode) == (OutboxState.FAILED, 3, -1)
    assert "gave up after 3 attempt(s)" in (row.last_error or "")
    assert len(fake_wecom.calls_to(SEND)) == 3


async def test_a_welcome_after_a_refused_call_is_retried_inside_its_window(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put_welcome(db, clock, fake_wecom)
    fake_wecom.fail_next(WELCOME_API, 45033)
    sender = make_sender()

    await sender.run_once()
    clock.set((await row_of(db, row_id)).due_at)
    await sender.run_once()

    assert (await row_of(db, row_id)).state is OutboxState.SENT
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1


async def test_a_welcome_whose_answer_was_lost_is_uncertain_and_never_sent_again_blindly(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put_welcome(db, clock, fake_wecom)
    fake_wecom.http_status_next(WELCOME_API, 502)
    sender = make_sender()

    await sender.run_once()
    clock.advance(5)
    await sender.run_once()

    row = await row_of(db, row_id)
    assert (row.state, row.attempts) == (OutboxState.UNCERTAIN, 1)
    assert row.settle_at == clock.now() - timedelta(seconds=5)  # for the settler: at once
    assert "asking the platform" in (row.last_error or "")
    assert len(fake_wecom.calls_to(WELCOME_API)) == 1


async def test_a_token_expiring_mid_batch_is_fetched_once(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    sender = make_sender()
    await put(db, clock, "nudge:warmup", messages.text("早"))
    await sender.run_once()
    fake_wecom.expire_all_tokens()
    for i in range(12):
        await put(db, clock, f"nudge:{i}", messages.text(f"第 {i} 条"), recipient="lisi")

    report = await sender.run_once()

    assert report.sent == 12
    assert len(fake_wecom.calls_to("gettoken")) == 2
    assert any(c.errcode == 42001 for c in fake_wecom.calls_to(SEND))
    assert len(fake_wecom.outbound.delivered_to("lisi")) == 12


async def test_the_member_limit_defers_rows_instead_of_losing_them(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    start = clock.now()
    ids = [await put(db, clock, f"nudge:{i}", messages.text(f"#{i}")) for i in range(35)]
    sender = make_sender()

    first = await sender.run_once()
    assert (first.sent, first.deferred) == (30, 5)
    for row_id in ids[30:]:
        row = await row_of(db, row_id)
        assert (row.state, row.due_at, row.attempts) == (
            OutboxState.PENDING,
            start + timedelta(minutes=1),
            0,
        )
    clock.advance(59)
    assert (await sender.run_once()).claimed == 0
    clock.advance(1)
    assert (await sender.run_once()).sent == 5

    assert len(fake_wecom.outbound.delivered_to("zhangsan")) == 35
    assert fake_wecom.outbound.dropped == []


async def test_without_limits_the_platform_silently_drops_the_excess(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    for i in range(35):
        await put(db, clock, f"nudge:{i}", messages.text(f"#{i}"))

    report = await make_sender(limits=RateLimits.unlimited()).run_once()

    assert report.sent == 35  # WeCom answered ok every time...
    assert len(fake_wecom.outbound.dropped) == 5  # ...and delivered 30


async def test_after_a_crash_staff_rows_are_resent_and_customer_rows_become_uncertain(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    customer_id = await add_customer(db, "wmAlice", clock.now())
    code = fake_wecom.add_welcome_code("wmAlice", "zhangsan")
    staff_row = await put(db, clock, "nudge:1", messages.text("回访"))
    welcome_row = await put(
        db,
        clock,
        "welcome:alice",
        messages.welcome(code, "你好"),
        channel=WELCOME,
        recipient="wmAlice",
        customer_id=customer_id,
        expires_at=welcome_expires_at(clock.now()),
    )
    fake_wecom.delay(SEND, 30)
    fake_wecom.delay(WELCOME_API, 30)
    crashed = asyncio.ensure_future(make_sender().run_once())
    await until(lambda: len(fake_wecom.calls) == 3, what="gettoken and both sends in flight")
    crashed.cancel()  # the process dies with both sends in flight
    await asyncio.gather(crashed, return_exceptions=True)
    fake_wecom.delay(SEND, 0)
    fake_wecom.delay(WELCOME_API, 0)
    assert (await row_of(db, staff_row)).state is OutboxState.SENDING

    clock.advance(make_sender().settings.lease)
    assert (await make_sender().run_once()).claimed == 0  # the lease has not lapsed yet
    clock.advance(1)
    report = await make_sender().run_once()

    assert (report.recovered_resent, report.recovered_uncertain) == ([staff_row], [welcome_row])
    assert report.outcomes == {staff_row: OutboxState.SENT}
    assert (await row_of(db, staff_row)).attempts == 2
    welcome = await row_of(db, welcome_row)
    assert welcome.state is OutboxState.UNCERTAIN
    # The lease outlived the code's 20 seconds: WeCom cannot tell any more, a person must.
    assert await make_sender().settle() == {welcome_row: Verdict.UNKNOWN}
    welcome = await row_of(db, welcome_row)
    assert "scrm outbox resend" in (welcome.last_error or "")
    clock.advance(3600)
    await make_sender().run_once()
    assert await make_sender().settle() == {}
    assert len(fake_wecom.calls_to(WELCOME_API)) == 1
    assert fake_wecom.outbound.delivered_to("wmAlice") == []


async def test_run_forever_sends_when_woken_and_stops_when_told(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    wake, stopping = asyncio.Event(), asyncio.Event()
    loop = asyncio.ensure_future(make_sender(idle_seconds=30).run_forever(wake, stopping))
    await asyncio.sleep(0.05)
    await put(db, clock, "nudge:1", messages.text("回访"))
    wake.set()
    await until(lambda: bool(fake_wecom.outbound.deliveries), what="the nudge delivered")

    stopping.set()
    await asyncio.wait_for(loop, timeout=5)
    assert len(fake_wecom.outbound.delivered_to("zhangsan")) == 1


async def test_drain_claims_batch_after_batch_until_nothing_is_due(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    ids = [await put(db, clock, f"nudge:{i}", messages.text(f"#{i}")) for i in range(7)]
    sender = make_sender(batch_size=2, concurrency=3, limits=RateLimits.unlimited())

    report = await sender.drain()

    assert (report.claimed, report.sent) == (7, 7)
    assert [(await row_of(db, i)).state for i in ids] == [OutboxState.SENT] * 7
    assert len(fake_wecom.outbound.delivered_to("zhangsan")) == 7
    assert (await sender.drain()).claimed == 0


async def test_a_stopping_sender_finishes_its_sends_and_gives_back_the_rest(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    ids = [await put(db, clock, f"nudge:{n}", messages.text(f"提醒 {n}")) for n in range(40)]
    fake_wecom.outbound.member_limits = ()  # the platform's 30 a minute is not the point here
    fake_wecom.delay(SEND, 0.3)
    sender = make_sender(batch_size=20, concurrency=4, limits=RateLimits.unlimited())
    stopping = asyncio.Event()
    running = asyncio.ensure_future(sender.run_forever(asyncio.Event(), stopping))
    await until(lambda: len(fake_wecom.calls_to(SEND)) == 4, what="four sends in flight")
    stopping.set()  # SIGTERM: twenty rows are claimed, four of them being sent
    await running

    rows = [await row_of(db, row_id) for row_id in ids]
    sent = [r for r in rows if r.state is OutboxState.SENT]
    assert len(sent) == len(fake_wecom.calls_to(SEND)) == 4  # in flight: finished, recorded
    rest = [(r.state, r.attempts, r.lease_until) for r in rows if r not in sent]
    assert rest == [(OutboxState.PENDING, 0, None)] * 36  # given back, as if never claimed

    fake_wecom.clear_faults()
    while (await sender.run_once()).claimed:
        pass
    assert {(await row_of(db, row_id)).state for row_id in ids} == {OutboxState.SENT}
    assert len(fake_wecom.outbound.delivered_to("zhangsan")) == 40
