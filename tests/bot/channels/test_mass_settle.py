"""Settling an uncertain mass message by finding it in WeCom's list of mass messages."""

from __future__ import annotations

from datetime import timedelta

from bot.channels.mass_settle import SETTLE_AFTER
from bot.wecom import WecomClient
from sop.delivery import Verdict, messages
from sop.delivery.messages import MASS
from store.models import MassStatus, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.mass import collector, fates, jobs, mass_sender
from tests.support.outbox import put, row_of

API = "externalcontact/add_msg_template"
LIST = "externalcontact/get_groupmsg_list_v2"


async def _put_mass(db: Database, clock: ManualClock, key: str, content: str) -> int:
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=["wmAlice"], content=content
    )
    return await put(db, clock, key, payload, channel=MASS, recipient="wmAlice")


async def test_a_mass_message_created_before_its_answer_was_lost_is_found_and_followed(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id = await _put_mass(db, clock, "enrollment:1:step:2", "双十一活动开始了")
    fake_wecom.lose_answer_next(API)
    sender = mass_sender(db, wecom_client, clock)

    await sender.run_once()
    row = await row_of(db, row_id)
    assert (row.state, row.settle_at) == (OutboxState.UNCERTAIN, clock.now() + SETTLE_AFTER)
    assert await sender.settle() == {}  # the platform's list may lag: not yet
    clock.advance(SETTLE_AFTER)
    assert await sender.settle() == {row_id: Verdict.SENT}

    [msgid] = fake_wecom.mass.messages
    row = await row_of(db, row_id)
    assert (row.state, row.platform_ids["msgid"]) == (OutboxState.SENT, msgid)
    assert "get_groupmsg_list_v2" in row.platform_ids["settled"]
    [job] = await jobs(db)
    assert (job.msgid, job.outbox_id) == (msgid, row_id)
    fake_wecom.confirm_mass(msgid)  # zhangsan sends it; the collector sees it like any other
    clock.advance(timedelta(minutes=5))
    await collector(db, wecom_client, clock).run_once()
    assert await fates(db, row_id) == {"wmAlice": MassStatus.SENT}
    assert len(fake_wecom.calls_to(API)) == 1


async def test_a_mass_message_never_created_is_sent_again_once(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id = await _put_mass(db, clock, "enrollment:1:step:2", "双十一活动开始了")
    fake_wecom.http_status_next(API, 504)  # the gateway timed out; WeCom never saw it
    sender = mass_sender(db, wecom_client, clock)
    await sender.run_once()
    clock.advance(SETTLE_AFTER)

    assert await sender.settle() == {row_id: Verdict.NOT_SENT}
    row = await row_of(db, row_id)
    assert (row.state, row.due_at, row.attempted_at) == (OutboxState.PENDING, clock.now(), None)
    await sender.run_once()

    assert (await row_of(db, row_id)).state is OutboxState.SENT
    assert len(fake_wecom.mass.messages) == 1
    assert len(fake_wecom.calls_to(API)) == 2


async def test_a_message_another_row_owns_or_another_content_is_not_taken_for_it(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    sender = mass_sender(db, wecom_client, clock)
    owned = await _put_mass(db, clock, "enrollment:1:step:2", "双十一活动开始了")
    other = await _put_mass(db, clock, "enrollment:2:step:2", "别的内容")
    await sender.run_once()  # two messages WeCom lists, each with its own row
    row_id = await _put_mass(db, clock, "enrollment:3:step:2", "双十一活动开始了")
    fake_wecom.http_status_next(API, 504)
    await sender.run_once()
    clock.advance(SETTLE_AFTER)

    assert await sender.settle() == {row_id: Verdict.NOT_SENT}
    assert [(await row_of(db, i)).state for i in (owned, other)] == [OutboxState.SENT] * 2


async def test_two_unclaimed_look_alikes_are_left_to_a_person(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    first = await _put_mass(db, clock, "enrollment:1:step:2", "双十一活动开始了")
    second = await _put_mass(db, clock, "enrollment:2:step:2", "双十一活动开始了")
    fake_wecom.lose_answer_next(API, times=2)
    sender = mass_sender(db, wecom_client, clock)
    await sender.run_once()
    clock.advance(SETTLE_AFTER)

    assert await sender.settle() == {first: Verdict.UNKNOWN, second: Verdict.UNKNOWN}
    row = await row_of(db, first)
    assert (row.state, row.settle_at) == (OutboxState.UNCERTAIN, None)
    assert "2 mass messages with this content" in (row.last_error or "")
    assert f"scrm outbox resend {first}" in (row.last_error or "")


async def test_an_unreadable_list_is_asked_again_later(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id = await _put_mass(db, clock, "enrollment:1:step:2", "双十一活动开始了")
    fake_wecom.lose_answer_next(API)
    sender = mass_sender(db, wecom_client, clock)
    await sender.run_once()
    clock.advance(SETTLE_AFTER)
    fake_wecom.fail_next(LIST, 45009)

    assert await sender.settle() == {row_id: Verdict.RETRY}
    row = await row_of(db, row_id)
    assert row.state is OutboxState.UNCERTAIN
    assert row.settle_at == clock.now() + SETTLE_AFTER / 2  # half the row's age
    clock.advance(SETTLE_AFTER / 2)
    assert await sender.settle() == {row_id: Verdict.SENT}
