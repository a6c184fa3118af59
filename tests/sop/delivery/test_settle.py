"""Settling uncertain welcome messages: the same code asked again tells what happened."""

from __future__ import annotations

from datetime import timedelta

from sop.delivery import Settlement, Verdict
from sop.delivery.messages import WELCOME
from sop.delivery.operations import resend
from sop.delivery.settle import Answered, take_unsettled, write_settlements
from store.models import OutboxRow, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, add_customer, put_welcome, row_of, timeline_of

WELCOME_API = "externalcontact/send_welcome_msg"


async def test_a_welcome_whose_answer_was_lost_is_settled_sent_by_the_platforms_41051(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put_welcome(db, clock, fake_wecom)
    fake_wecom.lose_answer_next(WELCOME_API)  # delivered, then the connection dropped
    sender = make_sender()

    await sender.run_once()
    row = await row_of(db, row_id)
    assert (row.state, row.settle_at) == (OutboxState.UNCERTAIN, clock.now())
    clock.advance(1)
    assert await sender.settle() == {row_id: Verdict.SENT}

    row = await row_of(db, row_id)
    assert (row.state, row.sent_at, row.settle_at, row.last_error) == (
        OutboxState.SENT,
        clock.now(),
        None,
        None,
    )
    assert "41051" in row.platform_ids["settled"]
    assert [c.errcode for c in fake_wecom.calls_to(WELCOME_API)] == [None, 41051]
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1
    assert await sender.settle() == {}  # nothing left to ask


async def test_a_welcome_that_never_reached_wecom_is_sent_by_the_settling_call(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    customer_id = await add_customer(db, "wmAlice", clock.now())
    row_id = await put_welcome(db, clock, fake_wecom)
    async with db.sessions.begin() as session:  # the welcome concerns Alice
        row = await session.get(OutboxRow, row_id)
        assert row is not None
        row.customer_id = customer_id
    fake_wecom.http_status_next(WELCOME_API, 502)  # the gateway answered, WeCom never acted
    sender = make_sender()

    await sender.run_once()
    assert (await row_of(db, row_id)).state is OutboxState.UNCERTAIN
    assert await sender.settle() == {row_id: Verdict.SENT}

    row = await row_of(db, row_id)
    assert row.state is OutboxState.SENT
    assert "sent the welcome" in row.platform_ids["settled"]
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1
    [entry] = await timeline_of(db, customer_id)
    assert entry.summary == "welcome: 你好"


async def test_past_the_codes_window_a_person_has_to_check(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put_welcome(db, clock, fake_wecom)
    fake_wecom.lose_answer_next(WELCOME_API)
    sender = make_sender()
    await sender.run_once()
    clock.advance(timedelta(seconds=21))

    assert await sender.settle() == {row_id: Verdict.UNKNOWN}

    row = await row_of(db, row_id)
    assert (row.state, row.settle_at) == (OutboxState.UNCERTAIN, None)
    assert "window closed" in (row.last_error or "")
    assert f"scrm outbox resend {row_id}" in (row.last_error or "")
    assert len(fake_wecom.calls_to(WELCOME_API)) == 1  # no second call once the code is dead
    assert await sender.settle() == {}


async def test_a_busy_platform_is_asked_again_later(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put_welcome(db, clock, fake_wecom)
    fake_wecom.lose_answer_next(WELCOME_API)
    sender = make_sender()
    await sender.run_once()
    fake_wecom.fail_next(WELCOME_API, -1)

    assert await sender.settle() == {row_id: Verdict.RETRY}
    row = await row_of(db, row_id)
    assert (row.state, row.settle_at) == (
        OutboxState.UNCERTAIN,
        clock.now() + timedelta(seconds=5),
    )
    assert await sender.settle() == {}  # not before its time
    clock.advance(5)
    assert await sender.settle() == {row_id: Verdict.SENT}
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1


async def test_an_operators_resend_wins_over_a_settlement_in_progress(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put_welcome(db, clock, fake_wecom)
    fake_wecom.lose_answer_next(WELCOME_API)
    await make_sender().run_once()
    lease_until = clock.now() + timedelta(minutes=2)
    async with db.engine.begin() as connection:
        [taken] = await take_unsettled(connection, clock.now(), [WELCOME], 10, lease_until)
    async with db.sessions.begin() as session:  # meanwhile a person resends it
        assert (await resend(session, [row_id], clock.now()))[row_id].startswith("queued")
    answer = Settlement(Verdict.SENT, "41051")

    async with db.engine.begin() as connection:
        answered = [Answered(taken, answer, "welcome", True)]
        written = await write_settlements(
            connection, answered, now=clock.now(), lease_until=lease_until
        )

    assert written == {}
    row = await row_of(db, row_id)
    assert (row.state, row.settle_at, row.attempted_at) == (OutboxState.PENDING, None, None)
