"""Staff app messages, from outbox row to what the staff member's client received."""

from __future__ import annotations

from sop.delivery import messages
from sop.delivery.messages import Button
from store.models import Direction, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import (
    AGENT_ID,
    SenderFactory,
    add_customer,
    put,
    row_of,
    timeline_of,
)


async def test_every_message_type_reaches_the_staff_member(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    card = messages.button_card(
        task_id="task-42",
        title="跟进 Alice",
        description="她三天没有回复",
        buttons=[Button("已联系", "done"), Button("稍后", "later", style=2)],
    )
    payloads = {
        "text": messages.text("该回访 Alice 了"),
        "markdown": messages.markdown("**回访** Alice"),
        "textcard": messages.textcard("回访", "Alice, 三天未回复", "https://example.com/c/1"),
        "template_card": card,
    }
    ids = {kind: await put(db, clock, f"nudge:{kind}", p) for kind, p in payloads.items()}

    report = await make_sender().run_once()

    assert report.sent == 4
    received = fake_wecom.outbound.delivered_to("zhangsan")
    assert sorted(d.msgtype for d in received) == sorted(payloads)
    for delivery in received:
        assert delivery.body["touser"] == "zhangsan"
        assert delivery.body["agentid"] == AGENT_ID
        assert delivery.body[delivery.msgtype] == payloads[delivery.msgtype][delivery.msgtype]
    for kind, row_id in ids.items():
        row = await row_of(db, row_id)
        assert row.state is OutboxState.SENT
        assert (row.attempts, row.sent_at) == (1, clock.now())
        assert row.platform_ids["msgid"].startswith("fakeMsg")
        assert ("response_code" in row.platform_ids) == (kind == "template_card")


async def test_unknown_staff_member_fails_with_the_platform_errcode(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await put(db, clock, "nudge:ghost", messages.text("hi"), recipient="ghost")

    await make_sender().run_once()

    row = await row_of(db, row_id)
    assert (row.state, row.last_errcode, row.attempts) == (OutboxState.FAILED, 81013, 1)
    assert "81013" in (row.last_error or "")
    assert fake_wecom.outbound.deliveries == []


async def test_invalid_content_fails_permanently_without_retry(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    empty = await put(db, clock, "nudge:empty", messages.text(""))
    too_long = await put(db, clock, "nudge:long", messages.text("长" * 1000))

    await make_sender().run_once()
    clock.advance(3600)
    await make_sender().run_once()

    assert (await row_of(db, empty)).last_errcode == 44004
    assert (await row_of(db, too_long)).last_errcode == 45002
    for row_id in (empty, too_long):
        row = await row_of(db, row_id)
        assert (row.state, row.attempts) == (OutboxState.FAILED, 1)
    assert len(fake_wecom.calls_to("message/send")) == 2


async def test_a_nudge_about_a_customer_is_noted_on_their_timeline(
    db: Database, clock: ManualClock, make_sender: SenderFactory
) -> None:
    customer_id = await add_customer(db, "wmAlice", clock.now())
    await put(db, clock, "nudge:alice", messages.text("回访 Alice"), customer_id=customer_id)

    await make_sender().run_once()

    [entry] = await timeline_of(db, customer_id)
    assert entry.direction is Direction.EVENT  # said to staff, not to the customer
    assert (entry.kind, entry.source) == ("outbox:wecom_app", "outbox")
    assert entry.summary == "to zhangsan: 回访 Alice"
    assert entry.data["payload"] == messages.text("回访 Alice")
