from __future__ import annotations

from sop.events import CustomerAdded, CustomerRemoved, TransferFailed
from store.models import (
    Customer,
    CustomerStaff,
    FollowState,
    RefreshRequest,
    RemovedBy,
    Staff,
)
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


async def test_add_external_contact_doc_sample(harness: Harness) -> None:
    (row_id,) = await harness.feed(samples.DOC_92130_ADD_EXTERNAL_CONTACT)
    customer = await harness.one(Customer, external_userid="woAJ2GCAAAXtWyujaWJHDDGi0mAAAA")
    follow = await harness.one(CustomerStaff, customer_id=customer.id)
    assert (follow.staff_userid, follow.state, follow.channel_state) == (
        "zhangsan",
        FollowState.ACTIVE,
        "teststate",
    )
    assert follow.added_at is not None and follow.added_at.timestamp() == samples.CREATE_TIME
    assert follow.add_way is None  # unknown until fetched
    assert await harness.one(Staff, userid="zhangsan")
    requests = {(r.kind, r.key) for r in await harness.all(RefreshRequest)}
    assert requests == {("customer", customer.external_userid), ("staff", "zhangsan")}
    (event,) = harness.published(CustomerAdded)
    assert (event.customer_id, event.staff_userid, event.welcome_code, event.channel_state) == (
        customer.id,
        "zhangsan",
        "WELCOMECODE",
        "teststate",
    )
    assert (event.half, event.inbox_id, event.source) == (False, row_id, "wecom:sales")
    (entry,) = await harness.timeline(customer_id=customer.id)
    assert (entry.kind, entry.staff_userid) == ("customer_added", "zhangsan")
    assert "teststate" in entry.summary


async def test_half_then_full_add(harness: Harness) -> None:
    await harness.feed(samples.external_contact("add_half_external_contact"))
    follow = await harness.one(CustomerStaff)
    assert follow.state is FollowState.HALF
    await harness.feed(samples.external_contact("add_external_contact", State="ad"))
    follow = await harness.one(CustomerStaff)
    assert (follow.state, follow.channel_state) == (FollowState.ACTIVE, "ad")
    assert [e.half for e in harness.published(CustomerAdded)] == [True, False]


async def test_edit_requests_a_refresh_only(harness: Harness) -> None:
    await harness.feed(samples.external_contact("edit_external_contact"))
    assert {r.kind for r in await harness.all(RefreshRequest)} >= {"customer"}
    assert harness.events == []
    (entry,) = await harness.timeline()
    assert entry.kind == "customer_edited"


async def test_removals_by_staff_and_by_customer(harness: Harness) -> None:
    await harness.feed(
        samples.external_contact("add_external_contact"),
        samples.external_contact("add_external_contact", userid="lisi"),
        samples.external_contact("del_external_contact", Source="DELETE_BY_TRANSFER"),
        samples.external_contact("del_follow_user", userid="lisi"),
    )
    by_staff = {f.staff_userid: f for f in await harness.all(CustomerStaff)}
    assert by_staff["zhangsan"].state is FollowState.REMOVED
    assert by_staff["zhangsan"].removed_by is RemovedBy.STAFF
    assert by_staff["lisi"].removed_by is RemovedBy.CUSTOMER
    assert by_staff["lisi"].removed_at is not None
    assert [(e.staff_userid, e.removed_by) for e in harness.published(CustomerRemoved)] == [
        ("zhangsan", "staff"),
        ("lisi", "customer"),
    ]
    kinds = [e.kind for e in await harness.timeline()]
    assert kinds == ["customer_added"] * 2 + ["customer_removed"] * 2


async def test_transfer_fail_records_the_reason(harness: Harness) -> None:
    await harness.feed(samples.external_contact("transfer_fail", FailReason="customer_refused"))
    follow = await harness.one(CustomerStaff)
    assert follow.transfer_fail_reason == "customer_refused"
    (event,) = harness.published(TransferFailed)
    assert (event.reason, event.staff_userid) == ("customer_refused", "zhangsan")


async def test_msg_audit_approved_and_unknown_change_type(harness: Harness) -> None:
    await harness.feed(
        samples.external_contact("msg_audit_approved"),
        samples.external_contact("some_future_change"),
    )
    assert [e.kind for e in await harness.timeline()] == ["msg_audit_approved", "raw"]
    assert harness.events == []
