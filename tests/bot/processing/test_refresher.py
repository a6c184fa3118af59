"""The refresher against the fake WeCom API over real HTTP, through the real WecomClient."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.processing.refresh_queue import ALL_TAGS, STAFF, request_refresh
from bot.processing.refresher import Refresher
from bot.wecom import WecomClient
from sop.events import CustomerUpdated, JoinedGroup, LeftGroup, TagAdded, TagRemoved
from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    CustomerTag,
    FollowState,
    GroupMember,
    RefreshRequest,
    Staff,
    Tag,
    TagSource,
)
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness
from tests.support.fake_wecom import FakeWecom

CUSTOMER = "wmCustomer0001"


@pytest.fixture
def refresher(harness: Harness, wecom_client: WecomClient) -> Refresher:
    return Refresher(
        harness.db.sessions, wecom_client, harness.bus, harness.clock, rng=random.Random(7)
    )


async def _drain(refresher: Refresher) -> None:
    while await refresher.run_once():
        pass


def _seed(fake: FakeWecom) -> dict[str, str]:
    fake.add_staff("zhangsan", "张三", department=[1, 2], position="销售")
    level = fake.add_tag_group("等级", ["VIP", "普通"])
    vip, normal = level.tag_ids
    fake.add_customer(CUSTOMER, "Alice", type=2, gender=2, unionid="uAlice", corp_name="腾讯")
    fake.add_follow(
        CUSTOMER,
        "zhangsan",
        remark="A姐",
        description="采购",
        tags=[vip],
        state="poster",
        add_way=3,
    )
    return {"vip": vip, "normal": normal}


async def test_customer_added_then_refreshed(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    tags = _seed(fake_wecom)
    await harness.feed(samples.external_contact("add_external_contact", State="poster"))
    await _drain(refresher)

    customer = await harness.one(Customer, external_userid=CUSTOMER)
    assert (customer.name, customer.type, customer.gender, customer.unionid) == (
        "Alice",
        2,
        2,
        "uAlice",
    )
    assert customer.corp_name == "腾讯" and customer.synced_at == harness.clock.now()
    follow = await harness.one(CustomerStaff, customer_id=customer.id)
    assert (follow.remark, follow.description, follow.add_way, follow.oper_userid) == (
        "A姐",
        "采购",
        3,
        "zhangsan",
    )
    staff = await harness.one(Staff, userid="zhangsan")
    assert (staff.name, staff.departments, staff.position) == ("张三", [1, 2], "销售")
    tag = await harness.one(Tag, platform_id=tags["vip"])
    assert (tag.group_name, tag.name) == ("等级", "VIP")
    customer_tag = await harness.one(CustomerTag, customer_id=customer.id)
    assert (customer_tag.tag_id, customer_tag.source) == (tag.id, TagSource.WECOM)
    assert [e.tag_name for e in harness.published(TagAdded)] == ["VIP"]
    assert [e.customer_id for e in harness.published(CustomerUpdated)] == [customer.id]
    assert await harness.all(RefreshRequest) == []
    assert [e.kind for e in await harness.timeline(customer_id=customer.id)] == [
        "customer_added",
        "tag_added",
    ]


async def test_edit_diffs_tags_and_leaves_playbook_tags_alone(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    tags = _seed(fake_wecom)
    await harness.feed(samples.external_contact("add_external_contact"))
    await _drain(refresher)
    customer = await harness.one(Customer, external_userid=CUSTOMER)
    async with harness.db.sessions.begin() as session:
        local = Tag(group_name="运营", name="已参加活动", created_at=harness.clock.now())
        session.add(local)
        await session.flush()
        session.add(
            CustomerTag(
                customer_id=customer.id,
                tag_id=local.id,
                staff_userid="zhangsan",
                source=TagSource.PLAYBOOK,
                added_at=harness.clock.now(),
            )
        )
    fake_wecom.update_follow(CUSTOMER, "zhangsan", tag_ids=[tags["normal"]])
    harness.events.clear()

    await harness.feed(samples.external_contact("edit_external_contact"))
    await _drain(refresher)

    assert [e.tag_name for e in harness.published(TagAdded)] == ["普通"]
    assert [e.tag_name for e in harness.published(TagRemoved)] == ["VIP"]
    assert len(harness.published(CustomerUpdated)) == 1
    async with harness.db.sessions() as session:
        names = set(
            await session.scalars(
                select(Tag.name).join(CustomerTag).where(CustomerTag.customer_id == customer.id)
            )
        )
    assert names == {"普通", "已参加活动"}
    harness.events.clear()
    await harness.feed(
        samples.external_contact("edit_external_contact", at=samples.CREATE_TIME + 1)
    )
    await _drain(refresher)
    assert harness.events == []  # nothing changed, nothing published


async def test_half_contact_becomes_active_once_listed(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    _seed(fake_wecom)
    await harness.feed(samples.external_contact("add_half_external_contact"))
    await _drain(refresher)
    assert (await harness.one(CustomerStaff)).state is FollowState.ACTIVE


async def test_group_reconcile(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    fake_wecom.add_staff("zhangsan", "张三")
    fake_wecom.add_customer("wmAlice", "Alice")
    fake_wecom.add_customer("wmBob", "Bob")
    fake_wecom.add_customer("wmCarol", "Carol")
    group = fake_wecom.add_group(
        "wrGroup0001", "VIP群", owner="zhangsan", members=["wmAlice", "wmBob"], notice="欢迎"
    )
    await harness.feed(samples.external_chat("create"))
    await _drain(refresher)
    row = await harness.one(CustomerGroup, chat_id="wrGroup0001")
    assert (row.name, row.owner_userid, row.notice) == ("VIP群", "zhangsan", "欢迎")
    assert row.member_version == f"{group.version:032x}"
    members = {m.member_userid: m for m in await harness.all(GroupMember)}
    assert set(members) == {"zhangsan", "wmAlice", "wmBob"}
    alice = await harness.one(Customer, external_userid="wmAlice")
    assert members["wmAlice"].customer_id == alice.id and alice.name == "Alice"
    assert members["wmAlice"].invitor_userid == "zhangsan"
    assert harness.published(JoinedGroup) == []  # first read: no announcements

    # Bob leaves and Carol joins, but only Carol's callback arrives (Bob's is lost).
    fake_wecom.remove_group_member("wrGroup0001", "wmBob")
    fake_wecom.add_group_member("wrGroup0001", "wmCarol", join_scene=3)
    await harness.feed(samples.members_changed("add_member", ["wmCarol"], scene=3))
    await _drain(refresher)
    bob = await harness.one(GroupMember, member_userid="wmBob")
    assert bob.left_at == harness.clock.now()
    assert [e.member_userid for e in harness.published(JoinedGroup)] == ["wmCarol"]
    assert [e.member_userid for e in harness.published(LeftGroup)] == ["wmBob"]
    carol = await harness.one(GroupMember, member_userid="wmCarol")
    assert carol.left_at is None and carol.join_scene == 3

    # A member the callbacks never mentioned shows up: announced once the group had a baseline.
    fake_wecom.add_customer("wmDan", "Dan")
    fake_wecom.add_group_member("wrGroup0001", "wmDan")
    async with harness.db.sessions.begin() as session:
        await request_refresh(session, "group", "wrGroup0001", harness.clock)
    await _drain(refresher)
    assert [e.member_userid for e in harness.published(JoinedGroup)] == ["wmCarol", "wmDan"]
    dan = await harness.one(Customer, external_userid="wmDan")
    reconciled = await harness.timeline(customer_id=dan.id)
    assert [(e.kind, e.inbox_id) for e in reconciled] == [("joined_group", None)]


async def test_tag_library_sync(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    level = fake_wecom.add_tag_group("等级", ["VIP", "普通"])
    await harness.feed(
        samples.event(
            "change_external_tag", Id=level.group_id, TagType="tag_group", ChangeType="create"
        )
    )
    await _drain(refresher)
    assert {t.name for t in await harness.all(Tag)} == {"VIP", "普通"}
    fake_wecom.delete_tag(level.tag_ids[0])
    fake_wecom.add_tag(level.group_id, "黑卡")
    async with harness.db.sessions.begin() as session:
        await request_refresh(session, "tag", ALL_TAGS, harness.clock)
    await _drain(refresher)
    live = {t.name for t in await harness.all(Tag) if t.deleted_at is None}
    assert live == {"普通", "黑卡"}
    assert all(t.group_platform_id == level.group_id for t in await harness.all(Tag))


async def test_failures_back_off_and_recover(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    _seed(fake_wecom)
    fake_wecom.fail_next("externalcontact/get", 45009, times=2)
    async with harness.db.sessions.begin() as session:
        await request_refresh(session, "customer", CUSTOMER, harness.clock)
    start = harness.clock.now()

    assert await refresher.run_once() == 1
    row = await harness.one(RefreshRequest)
    assert row.attempts == 1 and "45009" in (row.last_error or "")
    assert start + timedelta(seconds=15) <= row.due_at <= start + timedelta(seconds=30)
    assert await refresher.run_once() == 0  # not due yet

    harness.clock.set(row.due_at)
    assert await refresher.run_once() == 1
    row = await harness.one(RefreshRequest)
    assert row.attempts == 2
    assert row.due_at - harness.clock.now() >= timedelta(seconds=30)

    harness.clock.set(row.due_at)
    assert await refresher.run_once() == 1
    assert [r.kind for r in await harness.all(RefreshRequest)] == ["staff"]  # found on the way
    assert (await harness.one(Customer)).name == "Alice"
    assert len(fake_wecom.calls_to("externalcontact/get")) == 3


async def test_not_found_drops_the_request(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    async with harness.db.sessions.begin() as session:
        await request_refresh(session, "customer", "wmNobody", harness.clock)
        await request_refresh(session, "group", "wrNobody", harness.clock)
        await request_refresh(session, "staff", "nobody", harness.clock)
    assert await refresher.run_once() == 3
    assert await harness.all(RefreshRequest) == []


async def test_a_request_made_during_the_fetch_survives_it(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    fake_wecom.add_staff("zhangsan", "张三")
    fake_wecom.delay("user/get", 0.3)
    async with harness.db.sessions.begin() as session:
        await request_refresh(session, "staff", "zhangsan", harness.clock)
    task = asyncio.create_task(refresher.run_once())
    for _ in range(300):
        if (await harness.one(RefreshRequest)).claimed_until is not None:
            break
        await asyncio.sleep(0.005)
    assert await refresher.run_once() == 0  # claimed: another refresher skips it
    async with harness.db.sessions.begin() as session:
        await request_refresh(session, "staff", "zhangsan", harness.clock)
    assert await task == 1
    row = await harness.one(RefreshRequest)
    assert (row.claimed_until, row.attempts, row.version) == (None, 0, 2)
    fake_wecom.delay("user/get", 0)
    assert await refresher.run_once() == 1
    assert await harness.all(RefreshRequest) == []


async def test_a_stopping_refresher_gives_back_what_it_has_not_fetched(
    harness: Harness, refresher: Refresher, fake_wecom: FakeWecom
) -> None:
    for n in range(3):
        fake_wecom.add_staff(f"staff{n}", f"员工{n}")
    async with harness.db.sessions.begin() as session:
        for n in range(3):
            await request_refresh(session, STAFF, f"staff{n}", harness.clock)
    fake_wecom.delay("user/get", 0.2)
    stop = asyncio.Event()
    running = asyncio.ensure_future(refresher.run_forever(asyncio.Event(), stop))
    for _ in range(500):
        if fake_wecom.calls_to("user/get"):
            break
        await asyncio.sleep(0.01)
    stop.set()  # SIGTERM while the first of three claimed requests is fetched
    await running

    left = await harness.all(RefreshRequest)
    assert [(r.key, r.claimed_until) for r in left] == [("staff1", None), ("staff2", None)]
    assert [s.userid for s in await harness.all(Staff)] == ["staff0"]
