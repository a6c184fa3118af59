"""Operator actions: what may be sent again or withdrawn, and what may not."""

from __future__ import annotations

from datetime import timedelta

from sop.delivery import messages
from sop.delivery.messages import WELCOME
from sop.delivery.operations import cancel, resend
from store.models import OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, put, put_welcome, row_of


async def test_an_uncertain_row_goes_out_again_only_when_an_operator_says_so(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put_welcome(db, clock, fake_wecom)
    fake_wecom.http_status_next("externalcontact/send_welcome_msg", 502)
    sender = make_sender()
    await sender.run_once()
    assert (await row_of(db, row_id)).state is OutboxState.UNCERTAIN
    clock.advance(2)

    async with db.sessions.begin() as session:
        assert await resend(session, [row_id, 999], clock.now()) == {
            row_id: "queued again (was uncertain)",
            999: "no such outbox row",
        }
    await sender.run_once()

    row = await row_of(db, row_id)
    assert (row.state, row.attempts) == (OutboxState.SENT, 1)
    async with db.sessions.begin() as session:
        report = await resend(session, [row_id], clock.now())
    assert report == {row_id: "not resent: it is sent (sent rows are never sent twice)"}


async def test_a_row_whose_window_closed_is_not_resent(
    db: Database, clock: ManualClock, make_sender: SenderFactory
) -> None:
    row_id = await put(
        db,
        clock,
        "welcome:late",
        messages.welcome("code", "你好"),
        channel=WELCOME,
        recipient="wmAlice",
        expires_at=clock.now(),
    )
    await make_sender().run_once()

    async with db.sessions.begin() as session:
        [outcome] = (await resend(session, [row_id], clock.now())).values()
    assert outcome.startswith("not resent: its window closed at")
    assert (await row_of(db, row_id)).state is OutboxState.EXPIRED


async def test_only_pending_rows_are_cancelled(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    sent = await put(db, clock, "nudge:sent", messages.text("a"))
    await make_sender().run_once()
    later = await put(
        db, clock, "nudge:later", messages.text("b"), due_at=clock.now() + timedelta(hours=1)
    )

    async with db.sessions.begin() as session:
        report = await cancel(session, [sent, later], clock.now())
    clock.advance(7200)
    await make_sender().run_once()

    assert report == {
        sent: "not cancelled: it is sent, only pending rows can be",
        later: "cancelled",
    }
    assert (await row_of(db, later)).state is OutboxState.CANCELLED
    assert len(fake_wecom.calls_to("message/send")) == 1
