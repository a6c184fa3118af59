"""Mass messages: from outbox row to a task the fake WeCom holds, and the job that follows it."""

from __future__ import annotations

from bot.wecom import WecomClient
from sop.campaigns import control
from sop.campaigns.model import Campaign
from sop.delivery import messages
from sop.delivery.messages import MASS
from store.models import Direction, MassStatus, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.mass import FIRST_POLL, collector, fates, jobs, mass_sender
from tests.support.outbox import add_customer, put, row_of, timeline_of

API = "externalcontact/add_msg_template"
ZONE = "Asia/Shanghai"


async def test_an_engine_row_for_one_customer_becomes_a_task_and_a_pending_job(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    customer_id = await add_customer(db, "wmAlice", clock.now())
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=["wmAlice"], content="双十一活动开始了"
    )
    row_id = await put(
        db,
        clock,
        "enrollment:1:step:2",
        payload,
        channel=MASS,
        recipient="wmAlice",
        customer_id=customer_id,
    )

    report = await mass_sender(db, wecom_client, clock).run_once()

    assert report.sent == 1
    [call] = fake_wecom.calls_to(API)
    assert call.json == {
        "chat_type": "single",
        "sender": "zhangsan",
        "text": {"content": "双十一活动开始了"},
        "external_userid": ["wmAlice"],
    }
    row = await row_of(db, row_id)
    assert row.state is OutboxState.SENT
    assert row.platform_ids["fail_list"] == []
    [job] = await jobs(db)
    assert (job.msgid, job.sender, job.outbox_id) == (
        row.platform_ids["msgid"],
        "zhangsan",
        row_id,
    )
    assert (job.next_poll_at, job.finished_at) == (clock.now() + FIRST_POLL, None)
    assert await fates(db, row_id) == {"wmAlice": MassStatus.PENDING}
    assert fake_wecom.outbound.deliveries == []  # nothing reaches Alice before zhangsan sends
    [entry] = await timeline_of(db, customer_id)
    assert entry.summary == "mass message for zhangsan to confirm: 双十一活动开始了"


async def test_a_campaign_row_records_customers_that_are_not_contacts(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    fake_wecom.add_customer("wmBob", "Bob", follow=["zhangsan"])
    fake_wecom.add_customer("wmCarol", "Carol", follow=["lisi"])
    carol = await add_customer(db, "wmCarol", clock.now())
    payload = messages.mass_to_customers(
        sender="zhangsan",
        external_userids=["wmAlice", "wmBob", "wmCarol", "wmGhost"],
        content="新品上架",
        attachments=[{"msgtype": "link", "link": {"title": "新品", "url": "https://x.cn"}}],
    )
    row_id = await put(db, clock, "campaign:7:zhangsan", payload, channel=MASS)

    await mass_sender(db, wecom_client, clock).run_once()

    row = await row_of(db, row_id)
    assert row.state is OutboxState.SENT
    assert sorted(row.platform_ids["fail_list"]) == ["wmCarol", "wmGhost"]
    assert await fates(db, row_id) == {
        "wmAlice": MassStatus.PENDING,
        "wmBob": MassStatus.PENDING,
        "wmCarol": MassStatus.NOT_A_CONTACT,
        "wmGhost": MassStatus.NOT_A_CONTACT,
    }
    [entry] = await timeline_of(db, carol)
    assert (entry.direction, entry.kind) == (Direction.EVENT, "mass:not_a_contact")
    assert entry.summary.startswith("mass message not delivered: no longer a contact of zhangsan")


async def test_nobody_reachable_fails_the_row_with_the_platform_errcode(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    payload = messages.mass_to_customers(sender="lisi", external_userids=["wmAlice"], content="hi")
    row_id = await put(
        db, clock, "enrollment:2:step:1", payload, channel=MASS, recipient="wmAlice"
    )

    await mass_sender(db, wecom_client, clock).run_once()

    row = await row_of(db, row_id)
    assert (row.state, row.last_errcode, row.attempts) == (OutboxState.FAILED, 40096, 1)
    assert await jobs(db) == []


async def test_a_group_message_preselects_the_groups(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    fake_wecom.add_group("wrGroup1", "VIP 群", owner="zhangsan", members=["wmAlice"])
    fake_wecom.add_group("wrGroup2", "别人的群", owner="lisi")
    payload = messages.mass_to_groups(
        sender="zhangsan", chat_ids=["wrGroup1", "wrGroup2"], content="群公告"
    )
    row_id = await put(db, clock, "campaign:8:zhangsan", payload, channel=MASS)

    await mass_sender(db, wecom_client, clock).run_once()

    assert (await row_of(db, row_id)).platform_ids["fail_list"] == ["wrGroup2"]
    assert fake_wecom.calls_to(API)[0].json["chat_type"] == "group"
    assert await fates(db, row_id) == {
        "wrGroup1": MassStatus.PENDING,
        "wrGroup2": MassStatus.NOT_A_CONTACT,
    }


async def test_transient_errors_are_retried_and_send_once(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=["wmAlice"], content="hi"
    )
    row_id = await put(
        db, clock, "enrollment:3:step:1", payload, channel=MASS, recipient="wmAlice"
    )
    fake_wecom.fail_next(API, -1)
    fake_wecom.fail_next(API, 45009)
    sender = mass_sender(db, wecom_client, clock)

    for _ in range(3):
        await sender.run_once()
        clock.advance(60)

    row = await row_of(db, row_id)
    assert (row.state, row.attempts) == (OutboxState.SENT, 3)
    assert [c.errcode for c in fake_wecom.calls_to(API)] == [-1, 45009, 0]
    assert len(fake_wecom.mass.messages) == 1
    assert len(await jobs(db)) == 1


async def test_an_expired_token_is_replaced_and_the_message_sent(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    await wecom_client.tokens.get()  # a token now cached in the database
    fake_wecom.expire_all_tokens()
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=["wmAlice"], content="hi"
    )
    row_id = await put(
        db, clock, "enrollment:4:step:1", payload, channel=MASS, recipient="wmAlice"
    )

    await mass_sender(db, wecom_client, clock).run_once()

    assert (await row_of(db, row_id)).state is OutboxState.SENT
    assert [c.errcode for c in fake_wecom.calls_to(API)] == [42001, 0]


async def test_a_row_whose_recipient_is_not_in_the_payload_fails_without_a_call(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=["wmAlice"], content="hi"
    )
    row_id = await put(db, clock, "enrollment:5:step:1", payload, channel=MASS, recipient="wmBob")

    await mass_sender(db, wecom_client, clock).run_once()

    row = await row_of(db, row_id)
    assert row.state is OutboxState.FAILED
    assert "'wmBob' is neither the sender" in (row.last_error or "")
    assert fake_wecom.calls_to(API) == []


async def test_a_row_accepted_after_its_campaign_run_was_cancelled_is_withdrawn_at_once(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    """The row was being sent while the operator cancelled (a cancel leaves such rows), so
    its job must ask for the withdrawal the cancel could not mark."""
    fake_wecom.add_customer("wmBob", "Bob", follow=["zhangsan"])
    definition = Campaign.model_validate(
        {"name": "late", "channel": "mass", "content": {"text": "新品"}}
    )
    async with db.sessions.begin() as session:
        run = await control.create_run(session, definition, now=clock.now(), zone_default=ZONE)
        run_id = run.id
        cancelled = await control.cancel(session, "late", now=clock.now())
    assert cancelled.withdrawals == 0  # nothing accepted yet
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=["wmBob"], content="新品"
    )
    row_id = await put(db, clock, f"campaign:{run_id}:zhangsan:1", payload, channel=MASS)
    other_id = await put(db, clock, "campaign:999:zhangsan:1", payload, channel=MASS)

    await mass_sender(db, wecom_client, clock).run_once()

    by_row = {job.outbox_id: job for job in await jobs(db)}
    withdrawn, untouched = by_row[row_id], by_row[other_id]
    assert (withdrawn.withdraw_requested_at, withdrawn.next_poll_at) == (clock.now(),) * 2
    assert untouched.withdraw_requested_at is None
    assert untouched.next_poll_at == clock.now() + FIRST_POLL

    await collector(db, wecom_client, clock).run_once()
    assert await fates(db, row_id) == {"wmBob": MassStatus.WITHDRAWN}
    assert fake_wecom.mass.messages[withdrawn.msgid].cancelled_at is not None
    assert await fates(db, other_id) == {"wmBob": MassStatus.PENDING}
