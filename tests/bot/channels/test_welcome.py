"""Welcome messages: inside the code's 20 seconds, once, and never twice to a customer."""

from __future__ import annotations

from datetime import timedelta

from sop.delivery import messages
from sop.delivery.messages import WELCOME, welcome_expires_at
from store.models import Direction, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import SenderFactory, add_customer, put, row_of, timeline_of


async def _welcome_row(
    db: Database, clock: ManualClock, code: str, key: str = "welcome:alice"
) -> int:
    customer_id = await add_customer(db, f"wm-{key}", clock.now())
    return await put(
        db,
        clock,
        key,
        messages.welcome(code, "你好 Alice，我是张三"),
        channel=WELCOME,
        recipient="wmAlice",
        customer_id=customer_id,
        expires_at=welcome_expires_at(clock.now()),
    )


async def test_welcome_sent_within_the_window_lands_on_the_timeline(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    code = fake_wecom.add_welcome_code("wmAlice", "zhangsan")
    row_id = await _welcome_row(db, clock, code)
    clock.advance(15)

    await make_sender().run_once()

    row = await row_of(db, row_id)
    assert row.state is OutboxState.SENT
    [delivery] = fake_wecom.outbound.delivered_to("wmAlice")
    assert delivery.body == {"welcome_code": code, "text": {"content": "你好 Alice，我是张三"}}
    assert row.customer_id is not None
    [entry] = await timeline_of(db, row.customer_id)
    assert (entry.direction, entry.kind) == (Direction.OUTBOUND, "outbox:wecom_welcome")
    assert entry.summary == "welcome: 你好 Alice，我是张三"
    assert entry.occurred_at == clock.now()


async def test_a_row_past_its_window_is_expired_and_never_tried(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    code = fake_wecom.add_welcome_code("wmAlice", "zhangsan")
    row_id = await _welcome_row(db, clock, code)
    clock.advance(20)

    report = await make_sender().run_once()

    row = await row_of(db, row_id)
    assert (row.state, row.attempts, report.expired) == (OutboxState.EXPIRED, 0, 1)
    assert "window closed" in (row.last_error or "")
    assert fake_wecom.calls_to("externalcontact/send_welcome_msg") == []
    assert row.customer_id is not None
    assert await timeline_of(db, row.customer_id) == []


async def test_a_code_the_platform_finds_expired_is_recorded_expired(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    issued = clock.now() - timedelta(seconds=25)  # the event reached us late
    code = fake_wecom.add_welcome_code("wmAlice", "zhangsan", issued_at=issued)
    row_id = await _welcome_row(db, clock, code)

    await make_sender().run_once()

    row = await row_of(db, row_id)
    assert (row.state, row.last_errcode, row.attempts) == (OutboxState.EXPIRED, 41050, 1)
    assert fake_wecom.outbound.deliveries == []


async def test_a_used_code_fails_the_second_welcome(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    code = fake_wecom.add_welcome_code("wmAlice", "zhangsan")
    first = await _welcome_row(db, clock, code, "welcome:alice:playbook-a")
    await make_sender().run_once()
    second = await _welcome_row(db, clock, code, "welcome:alice:playbook-b")

    await make_sender().run_once()

    assert (await row_of(db, first)).state is OutboxState.SENT
    row = await row_of(db, second)
    assert (row.state, row.last_errcode) == (OutboxState.FAILED, 41051)
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1
