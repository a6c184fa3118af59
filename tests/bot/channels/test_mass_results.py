"""The mass-message collector: polls the fake result APIs until each recipient is settled."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.wecom import WecomClient
from sop.delivery import messages
from sop.delivery.messages import MASS
from store.models import Direction, MassJob, MassStatus
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.mass import FIRST_POLL, collector, fates, jobs, mass_sender, recipients
from tests.support.outbox import add_customer, put, timeline_of, until

TASK = "externalcontact/get_groupmsg_task"
RESULT = "externalcontact/get_groupmsg_send_result"
CANCEL = "externalcontact/cancel_groupmsg_send"
REMIND = "externalcontact/remind_groupmsg_send"


@pytest.fixture(autouse=True)
def more_customers(fake_wecom: FakeWecom) -> None:
    for name in ("Bob", "Carol", "Dave", "Erin"):
        fake_wecom.add_customer(f"wm{name}", name, follow=["zhangsan"])


async def _accept(
    db: Database,
    clock: ManualClock,
    client: WecomClient,
    customers: list[str],
    key: str = "campaign:1:zhangsan",
) -> tuple[int, str]:
    """A campaign row from zhangsan to ``customers``, sent: its outbox id and msgid."""
    payload = messages.mass_to_customers(
        sender="zhangsan", external_userids=customers, content="周末特惠"
    )
    row_id = await put(db, clock, key, payload, channel=MASS)
    await mass_sender(db, client, clock).run_once()
    job = next(j for j in await jobs(db) if j.outbox_id == row_id)
    return row_id, job.msgid


async def _withdraw(db: Database, clock: ManualClock) -> None:
    """What cancelling the campaign run does to its unfinished jobs (sop's control.cancel)."""
    async with db.sessions.begin() as session:
        await session.execute(
            update(MassJob)
            .where(MassJob.finished_at.is_(None))
            .values(withdraw_requested_at=clock.now(), next_poll_at=clock.now())
        )


async def test_nothing_is_polled_before_the_first_poll_is_due(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    await _accept(db, clock, wecom_client, ["wmAlice"])

    report = await collector(db, wecom_client, clock).run_once()

    assert report.polled == 0
    assert fake_wecom.calls_to(TASK) == []


async def test_a_confirmed_message_is_sent_to_each_customer_and_on_their_timeline(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    alice = await add_customer(db, "wmAlice", clock.now())
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice", "wmBob"])
    clock.advance(FIRST_POLL)
    fake_wecom.confirm_mass(msgid)
    sent_at = clock.now().replace(microsecond=0)
    clock.advance(60)

    report = await collector(db, wecom_client, clock).run_once()

    assert (report.polled, report.finished) == (1, 1)
    assert report.settled == {MassStatus.SENT: 2}
    assert await fates(db, row_id) == {"wmAlice": MassStatus.SENT, "wmBob": MassStatus.SENT}
    assert {r.send_time for r in await recipients(db)} == {sent_at}
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1
    [entry] = await timeline_of(db, alice)
    assert (entry.direction, entry.kind, entry.occurred_at) == (
        Direction.OUTBOUND,
        "mass:sent",
        sent_at,
    )
    assert entry.summary == "mass message sent by zhangsan: 周末特惠"
    assert entry.data["outbox_id"] == row_id
    [job] = await jobs(db)
    assert (job.finished_at, job.staff_status) == (clock.now(), 2)

    await collector(db, wecom_client, clock).run_once()  # finished: never polled again
    assert len(fake_wecom.calls_to(TASK)) == 1


async def test_a_customer_who_left_before_the_staff_sent_is_not_a_contact(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice", "wmBob"])
    fake_wecom.remove_follow("wmBob", "zhangsan")
    fake_wecom.confirm_mass(msgid)
    clock.advance(FIRST_POLL)

    await collector(db, wecom_client, clock).run_once()

    assert await fates(db, row_id) == {
        "wmAlice": MassStatus.SENT,
        "wmBob": MassStatus.NOT_A_CONTACT,
    }
    assert fake_wecom.outbound.delivered_to("wmBob") == []


async def test_a_customer_over_the_receiving_limit_is_limit_reached(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    first, first_msgid = await _accept(db, clock, wecom_client, ["wmAlice"], "campaign:1:a")
    fake_wecom.confirm_mass(first_msgid)
    second, second_msgid = await _accept(db, clock, wecom_client, ["wmAlice", "wmBob"], "c:2")
    fake_wecom.confirm_mass(second_msgid)  # the same day: Alice had hers
    clock.advance(FIRST_POLL)

    await collector(db, wecom_client, clock).run_once()

    assert await fates(db, first) == {"wmAlice": MassStatus.SENT}
    assert await fates(db, second) == {
        "wmAlice": MassStatus.LIMIT_REACHED,
        "wmBob": MassStatus.SENT,
    }
    assert len(fake_wecom.outbound.delivered_to("wmAlice")) == 1


async def test_the_monthly_limit_an_admin_set_is_honoured(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    fake_wecom.mass.monthly_limit = 2
    outcomes = []
    for day in range(3):
        row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice"], f"c:{day}")
        fake_wecom.confirm_mass(msgid)
        clock.advance(FIRST_POLL)
        await collector(db, wecom_client, clock).run_once()
        outcomes.append((await fates(db, row_id))["wmAlice"])
        clock.advance(timedelta(days=1))

    assert outcomes == [MassStatus.SENT, MassStatus.SENT, MassStatus.LIMIT_REACHED]


async def test_not_sent_before_the_horizon_is_cancelled_and_not_confirmed(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    alice = await add_customer(db, "wmAlice", clock.now())
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice", "wmBob"])
    mass = collector(db, wecom_client, clock, horizon=timedelta(days=3))
    polls = 0
    while not (await jobs(db))[0].finished_at:
        clock.advance(timedelta(minutes=30))
        polls += (await mass.run_once()).polled
        assert polls < 200, "the collector never gave up"

    assert await fates(db, row_id) == {
        "wmAlice": MassStatus.NOT_CONFIRMED,
        "wmBob": MassStatus.NOT_CONFIRMED,
    }
    [job] = await jobs(db)
    assert job.finished_at is not None
    assert job.finished_at >= job.accepted_at + timedelta(days=3)
    assert len(fake_wecom.calls_to(CANCEL)) == 1
    assert fake_wecom.mass.messages[msgid].cancelled_at is not None
    assert [c.errcode for c in fake_wecom.calls_to(REMIND)] == [0, 0]  # after day 1 and 2
    # backed off: not all 144 half hours; the task is read once more after the cancel
    assert len(fake_wecom.calls_to(TASK)) == polls + 1 < 60
    [entry] = await timeline_of(db, alice)
    assert (entry.kind, entry.direction) == ("mass:not_confirmed", Direction.EVENT)
    assert "zhangsan did not send it" in entry.summary
    with pytest.raises(ValueError, match="no mass message"):
        fake_wecom.confirm_mass(msgid)  # too late: the task was withdrawn


async def test_a_staff_member_who_sends_later_is_picked_up(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice"])
    mass = collector(db, wecom_client, clock)
    clock.advance(FIRST_POLL)
    await mass.run_once()
    [job] = await jobs(db)
    first_gap = job.next_poll_at - clock.now()
    clock.set(job.next_poll_at)
    await mass.run_once()
    [job] = await jobs(db)
    assert job.next_poll_at - clock.now() > first_gap  # backing off
    assert await fates(db, row_id) == {"wmAlice": MassStatus.PENDING}

    clock.advance(timedelta(hours=20))
    fake_wecom.confirm_mass(msgid)
    clock.set(job.next_poll_at)
    await mass.run_once()

    assert await fates(db, row_id) == {"wmAlice": MassStatus.SENT}
    assert len(fake_wecom.calls_to(RESULT)) == 1  # results read only once it was sent


async def test_transient_errors_are_retried_on_a_later_poll(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice"])
    fake_wecom.confirm_mass(msgid)
    fake_wecom.fail_next(TASK, 45033)
    fake_wecom.http_status_next(RESULT, 502)
    mass = collector(db, wecom_client, clock)

    clock.advance(FIRST_POLL)
    assert len((await mass.run_once()).errors) == 1  # the task list failed
    [job] = await jobs(db)
    assert job.last_errcode == 45033
    clock.set(job.next_poll_at)
    assert len((await mass.run_once()).errors) == 1  # the results failed
    clock.set((await jobs(db))[0].next_poll_at)
    report = await mass.run_once()

    assert report.errors == []
    assert await fates(db, row_id) == {"wmAlice": MassStatus.SENT}
    assert (await jobs(db))[0].last_error is None


async def test_an_expired_token_is_replaced_while_collecting(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice"])
    fake_wecom.confirm_mass(msgid)
    fake_wecom.expire_all_tokens()
    clock.advance(FIRST_POLL)

    report = await collector(db, wecom_client, clock).run_once()

    assert report.errors == []
    assert [c.errcode for c in fake_wecom.calls_to(TASK)] == [42001, 0]
    assert await fates(db, row_id) == {"wmAlice": MassStatus.SENT}


async def test_unreadable_results_fail_after_the_horizon_and_grace(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id, _ = await _accept(db, clock, wecom_client, ["wmAlice"])
    fake_wecom.fail_next(TASK, 48002, times=1000)
    mass = collector(db, wecom_client, clock, horizon=timedelta(hours=6), grace=timedelta(hours=6))
    while not (await jobs(db))[0].finished_at:
        clock.set((await jobs(db))[0].next_poll_at)
        await mass.run_once()

    assert await fates(db, row_id) == {"wmAlice": MassStatus.FAILED}
    [job] = await jobs(db)
    assert job.last_errcode == 48002
    assert job.finished_at is not None
    assert job.finished_at >= job.accepted_at + timedelta(hours=12)


async def test_results_are_read_page_by_page(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    customers = ["wmAlice", "wmBob", "wmCarol", "wmDave", "wmErin"]
    row_id, msgid = await _accept(db, clock, wecom_client, customers)
    fake_wecom.confirm_mass(msgid)
    clock.advance(FIRST_POLL)

    await collector(db, wecom_client, clock, page_size=2).run_once()

    assert await fates(db, row_id) == dict.fromkeys(customers, MassStatus.SENT)
    cursors = [c.json.get("cursor", "") for c in fake_wecom.calls_to(RESULT)]
    assert len(cursors) == 3
    assert cursors[0] == ""
    assert "" not in cursors[1:]


async def test_groups_the_staff_member_picks_are_recorded_when_they_send(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    fake_wecom.add_group("wrGroup1", "VIP 群", owner="zhangsan")
    fake_wecom.add_group("wrGroup2", "新人群", owner="zhangsan")
    payload = messages.mass_to_groups(sender="zhangsan", content="群公告")
    row_id = await put(db, clock, "campaign:9:zhangsan", payload, channel=MASS)
    await mass_sender(db, wecom_client, clock).run_once()
    [job] = await jobs(db)
    assert await fates(db, row_id) == {}
    fake_wecom.confirm_mass(job.msgid, chat_ids=["wrGroup2"])
    clock.advance(FIRST_POLL)

    await collector(db, wecom_client, clock).run_once()

    assert await fates(db, row_id) == {"wrGroup2": MassStatus.SENT}
    assert (await jobs(db))[0].finished_at is not None


async def test_a_cancelled_run_withdraws_a_task_the_staff_member_has_not_sent(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    alice = await add_customer(db, "wmAlice", clock.now())
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice", "wmBob"])
    clock.advance(60)
    await _withdraw(db, clock)  # due now, before the first poll would have been

    report = await collector(db, wecom_client, clock).run_once()

    assert (report.polled, report.finished) == (1, 1)
    assert report.settled == {MassStatus.WITHDRAWN: 2}
    assert await fates(db, row_id) == {
        "wmAlice": MassStatus.WITHDRAWN,
        "wmBob": MassStatus.WITHDRAWN,
    }
    assert [c.json["msgid"] for c in fake_wecom.calls_to(CANCEL)] == [msgid]
    assert fake_wecom.mass.messages[msgid].cancelled_at is not None
    assert fake_wecom.calls_to(RESULT) == []
    [job] = await jobs(db)
    assert job.cancelled_at == job.finished_at == clock.now()
    [entry] = await timeline_of(db, alice)
    assert (entry.kind, entry.direction) == ("mass:withdrawn", Direction.EVENT)
    assert "cancelled before zhangsan sent it" in entry.summary
    with pytest.raises(ValueError, match="no mass message"):
        fake_wecom.confirm_mass(msgid)  # the staff member can no longer send it

    clock.advance(timedelta(days=1))
    await collector(db, wecom_client, clock).run_once()  # finished: cancelled once
    assert len(fake_wecom.calls_to(CANCEL)) == 1


async def test_a_cancelled_run_keeps_what_the_staff_member_already_sent(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice", "wmBob"])
    fake_wecom.confirm_mass(msgid)
    clock.advance(60)
    await _withdraw(db, clock)

    report = await collector(db, wecom_client, clock).run_once()

    assert report.settled == {MassStatus.SENT: 2}
    assert await fates(db, row_id) == {"wmAlice": MassStatus.SENT, "wmBob": MassStatus.SENT}
    assert fake_wecom.calls_to(CANCEL) == []
    assert fake_wecom.mass.messages[msgid].cancelled_at is None
    [job] = await jobs(db)
    assert (job.finished_at, job.cancelled_at) == (clock.now(), None)


async def test_a_refused_withdrawal_is_retried_on_a_later_poll(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice"])
    await _withdraw(db, clock)
    fake_wecom.fail_next(CANCEL, 45033)
    mass = collector(db, wecom_client, clock)

    report = await mass.run_once()

    assert len(report.errors) == 1
    assert await fates(db, row_id) == {"wmAlice": MassStatus.PENDING}
    [job] = await jobs(db)
    assert (job.last_errcode, job.cancelled_at, job.finished_at) == (45033, None, None)
    assert job.next_poll_at > clock.now()
    clock.set(job.next_poll_at)
    assert (await mass.run_once()).errors == []

    assert await fates(db, row_id) == {"wmAlice": MassStatus.WITHDRAWN}
    assert [c.errcode for c in fake_wecom.calls_to(CANCEL)] == [45033, 0]
    assert fake_wecom.mass.messages[msgid].cancelled_at is not None


async def test_a_run_cancelled_while_its_job_is_polled_is_withdrawn_on_the_next_pass(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice"])
    clock.advance(FIRST_POLL)
    mass = collector(db, wecom_client, clock)
    fake_wecom.delay(TASK, 2.0)  # room to cancel while the task list is being read
    polling = asyncio.create_task(mass.run_once())
    await until(lambda: bool(fake_wecom.calls_to(TASK)), what="the task list being read")
    await _withdraw(db, clock)
    await polling
    fake_wecom.delay(TASK, 0)

    [job] = await jobs(db)
    assert (job.next_poll_at, job.finished_at) == (clock.now(), None)  # not backed off
    await mass.run_once()
    assert await fates(db, row_id) == {"wmAlice": MassStatus.WITHDRAWN}
    assert fake_wecom.mass.messages[msgid].cancelled_at is not None


async def test_a_send_between_the_read_and_the_cancel_stays_sent(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    """The collector read the task unsent and asked to cancel it; the member sent it while
    the cancel was on its way. The platform delivered it: the recipients are ``sent``."""
    row_id, msgid = await _accept(db, clock, wecom_client, ["wmAlice", "wmBob"])
    clock.advance(60)
    await _withdraw(db, clock)
    fake_wecom.delay(CANCEL, 0.5)  # the cancel is handled half a second after it arrives
    collecting = asyncio.create_task(collector(db, wecom_client, clock).run_once())
    # The fake records calls in a list: nothing to await but the next look.
    while not fake_wecom.calls_to(TASK):  # noqa: ASYNC110 - the collector read it: unsent
        await asyncio.sleep(0.005)
    fake_wecom.confirm_mass(msgid)  # ... and now the member sends it

    report = await asyncio.wait_for(collecting, timeout=10)

    assert len(fake_wecom.calls_to(CANCEL)) == 1
    assert report.settled == {MassStatus.SENT: 2}
    assert await fates(db, row_id) == {"wmAlice": MassStatus.SENT, "wmBob": MassStatus.SENT}
