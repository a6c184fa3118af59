"""The transfer poller against the fake WeCom over real HTTP, on both backends, with the
manual clock: a departure hands customers, the group, tasks and enrollments to the successor;
failed transfers stay visible with the reason."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.transfers import TransferPoller
from bot.wecom import WecomClient
from sop.events import EventBus
from sop.staff import audit
from sop.staff.departure import subscribe_departures
from sop.staff.plan import plan_transfer
from sop.staff.settings import StaffSettings, Successor
from sop.staff.transfer import record_transfer
from store.models import (
    CustomerGroup,
    CustomerStaff,
    Enrollment,
    FollowState,
    Interaction,
    OutboxRow,
    Task,
    TaskState,
    TransferItem,
    TransferItemState,
    TransferJob,
    TransferJobState,
)
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.transfers import LEAVER, SALES, SUCCESSOR, World, external, seed

GROUP = "wrTransferGroup0000000000000001"


async def follows(db: Database, customer_id: int) -> dict[str, tuple[FollowState, str | None]]:
    async with db.sessions() as session:
        rows = await session.scalars(
            select(CustomerStaff).where(CustomerStaff.customer_id == customer_id)
        )
        return {r.staff_userid: (r.state, r.transfer_fail_reason) for r in rows}


async def depart(db: Database, clock: ManualClock, fake: FakeWecom) -> None:
    """The leaver leaves: on the platform, then the change_contact callback is processed."""
    fake.staff[LEAVER].status = 5
    bus = EventBus()
    settings = StaffSettings(successor=Successor(by_department={SALES: SUCCESSOR}))
    subscribe_departures(bus, settings, clock)
    harness = Harness(db, clock, bus=bus)
    await harness.feed(samples.event("change_contact", ChangeType="delete_user", UserID=LEAVER))


async def test_a_departure_transfers_customers_groups_tasks_and_enrollments(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    world = await seed(db, clock.now(), fake=fake_wecom)
    await depart(db, clock, fake_wecom)
    async with db.sessions() as session:
        job = (await session.scalars(select(TransferJob))).one()
        tasks = list(await session.scalars(select(Task).order_by(Task.id)))
        enrollment = await session.get(Enrollment, world.enrollments[0])
        notice = (await session.scalars(select(OutboxRow))).one()
    assert (job.mode.value, job.handover_userid, job.takeover_userid) == (
        "resigned",
        LEAVER,
        SUCCESSOR,
    )
    assert [(t.staff_userid, t.state) for t in tasks] == [
        (LEAVER, TaskState.REASSIGNED),
        (SUCCESSOR, TaskState.OPEN),
    ]
    assert tasks[1].due_at == tasks[0].due_at and tasks[1].script == "Hello!"
    assert enrollment is not None and enrollment.staff_userid == SUCCESSOR
    assert notice.recipient == SUCCESSOR and "3 customers, 1 groups" in str(notice.payload)

    poller = TransferPoller(db.sessions, wecom_client, clock)
    await poller.run_once()
    submitted = fake_wecom.calls_to("externalcontact/resigned/transfer_customer")
    assert [c.json["external_userid"] for c in submitted] == [[external(n) for n in (1, 2, 3)]]
    assert fake_wecom.groups[GROUP].owner == SUCCESSOR  # groups move at once
    async with db.sessions() as session:
        group = await session.get(CustomerGroup, world.group_id)
        assert group is not None and group.owner_userid == SUCCESSOR

    fake_wecom.refuse_transfer(external(2))
    await poller.run_once()  # not due yet: polled again after poll_every
    assert not fake_wecom.calls_to("externalcontact/resigned/transfer_result")
    clock.advance(timedelta(hours=1))
    await poller.run_once()
    assert await follows(db, world.customers[external(2)]) == {
        LEAVER: (FollowState.ACTIVE, "customer_refused")
    }
    assert await follows(db, world.customers[external(1)]) == {
        LEAVER: (FollowState.ACTIVE, None)
    }  # still waiting: the platform takes over after 24 hours

    clock.advance(timedelta(hours=24))
    report = await poller.run_once()
    assert report.errors == []
    for n in (1, 3):
        assert await follows(db, world.customers[external(n)]) == {
            LEAVER: (FollowState.REMOVED, None),
            SUCCESSOR: (FollowState.ACTIVE, None),
        }
    contact = await wecom_client.get_external_contact(external(1))
    assert [f["userid"] for f in contact["follow_user"]] == [SUCCESSOR]
    async with db.sessions() as session:
        job = (await session.scalars(select(TransferJob))).one()
        kinds = [i.kind for i in await session.scalars(select(Interaction))]
        actions = [e.action for e in await audit.entries(session)]
    assert job.state is TransferJobState.DONE and job.counts == {"transferred": 3, "failed": 1}
    assert sorted(k for k in kinds if "transfer" in k) == [
        "customer_transferred",
        "customer_transferred",
        "transfer_failed",
    ]
    assert actions[:3] == ["transfer_planned", "task_reassigned", "enrollment_moved"]
    assert actions.count("customer_transferred") == 2
    assert "customer_transfer_failed" in actions and actions[-1] == "transfer_finished"


async def test_a_successor_at_the_customer_limit_leaves_the_customer_with_the_reason(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    world = await seed(db, clock.now(), customers=2, fake=fake_wecom)
    fake_wecom.set_customer_limit(SUCCESSOR, 1)
    async with db.sessions.begin() as session:
        plan = await plan_transfer(session, LEAVER, SUCCESSOR, groups=False)
        job = await record_transfer(
            session, plan, key="operator:1", actor="ops", message="李四接替我", now=clock.now()
        )
    assert job.mode.value == "onjob"
    poller = TransferPoller(db.sessions, wecom_client, clock)
    await poller.run_once()
    call = fake_wecom.calls_to("externalcontact/transfer_customer")[0]
    assert call.json["transfer_success_msg"] == "李四接替我"
    fake_wecom.complete_transfers()  # both settle now: the first fits, the second does not
    clock.advance(timedelta(hours=1))
    await poller.run_once()
    assert await follows(db, world.customers[external(1)]) == {
        LEAVER: (FollowState.REMOVED, None),
        SUCCESSOR: (FollowState.ACTIVE, None),
    }
    assert await follows(db, world.customers[external(2)]) == {
        LEAVER: (FollowState.ACTIVE, "customer_limit_exceed")
    }
    async with db.sessions() as session:
        failed = (
            await session.scalars(
                select(TransferItem).where(TransferItem.state == TransferItemState.FAILED)
            )
        ).one()
    assert (failed.subject, failed.status) == (external(2), 4)


async def test_per_customer_refusals_and_a_transient_error(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    world = await seed(db, clock.now(), customers=2, fake=fake_wecom)
    fake_wecom.remove_follow(external(2), LEAVER)  # gone on the platform, not yet here
    async with db.sessions.begin() as session:
        plan = await plan_transfer(session, LEAVER, SUCCESSOR, groups=False)
        await record_transfer(session, plan, key="operator:2", actor="ops", now=clock.now())
    fake_wecom.fail_next("externalcontact/transfer_customer", 45009)
    poller = TransferPoller(db.sessions, wecom_client, clock)
    report = await poller.run_once()
    assert len(report.errors) == 1 and "45009" in report.errors[0]
    async with db.sessions() as session:
        job = (await session.scalars(select(TransferJob))).one()
    assert job.attempts == 1 and job.next_check_at == clock.now() + timedelta(minutes=1)
    clock.advance(timedelta(minutes=1))
    await poller.run_once()
    assert await follows(db, world.customers[external(2)]) == {
        LEAVER: (FollowState.ACTIVE, "not_a_contact")
    }
    async with db.sessions() as session:
        states = [i.state for i in await session.scalars(select(TransferItem))]
    assert states == [TransferItemState.WAITING, TransferItemState.FAILED]


async def test_a_resigned_transfer_of_a_member_who_did_not_leave_fails_with_the_errcode(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    world: World = await seed(db, clock.now(), customers=1, fake=fake_wecom)
    async with db.sessions.begin() as session:
        plan = await plan_transfer(session, LEAVER, SUCCESSOR)
        plan.mode = plan.mode.RESIGNED
        await record_transfer(session, plan, key="operator:3", actor="ops", now=clock.now())
    await TransferPoller(db.sessions, wecom_client, clock).run_once()
    assert await follows(db, world.customers[external(1)]) == {
        LEAVER: (FollowState.ACTIVE, "errcode_40097")
    }
    assert fake_wecom.groups[GROUP].owner == LEAVER
    async with db.sessions() as session:
        items = list(await session.scalars(select(TransferItem).order_by(TransferItem.id)))
        job = (await session.scalars(select(TransferJob))).one()
    assert [(i.state, i.errcode) for i in items] == [
        (TransferItemState.FAILED, 40097),
        (TransferItemState.FAILED, 90500),
    ]
    assert job.state is TransferJobState.DONE
