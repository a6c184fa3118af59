"""Tags mirrored to WeCom: names in the outbox row, corp tags on the customer in the fake."""

from __future__ import annotations

import random

import pytest

from bot.channels.tags import TagChannel
from bot.wecom import WecomClient
from sop.delivery import RateLimits, Sender, SenderSettings
from sop.delivery.messages import TAG, mark_tag
from store.models import OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import put, row_of


@pytest.fixture
def tags(wecom_client: WecomClient, clock: ManualClock) -> TagChannel:
    return TagChannel(wecom_client, clock, default_group="SCRM")


def sender_of(db: Database, clock: ManualClock, *channels: TagChannel) -> Sender:
    settings = SenderSettings(limits=RateLimits())
    return Sender(db.sessions, channels, clock, settings, rng=random.Random(5))


async def put_tags(db: Database, clock: ManualClock, key: str, **changes: list[str]) -> int:
    payload = mark_tag(userid="zhangsan", external_userid="wmAlice", **changes)
    return await put(db, clock, key, payload, channel=TAG, recipient="wmAlice")


def tag_names(fake: FakeWecom, customer: str = "wmAlice", staff: str = "zhangsan") -> set[str]:
    follow = fake.customers[customer].follows[staff]
    return {f"{fake.tag_groups[fake.tags[t].group_id].group_name}/{fake.tags[t].name}"
            for t in follow.tag_ids}  # fmt: skip


async def test_named_tags_are_found_or_created_then_marked(
    db: Database,
    clock: ManualClock,
    fake_wecom: FakeWecom,
    tags: TagChannel,
    wecom_client: WecomClient,
) -> None:
    fake_wecom.add_tag_group("客户等级", ["VIP", "普通"])
    row_id = await put_tags(db, clock, "tags:1", add=["客户等级/VIP", "新客", "渠道/展会"])

    assert (await sender_of(db, clock, tags).run_once()).sent == 1

    assert len(fake_wecom.calls_to("externalcontact/get_corp_tag_list")) == 1
    assert tag_names(fake_wecom) == {"客户等级/VIP", "SCRM/新客", "渠道/展会"}
    library = {
        g["group_name"]: [t["name"] for t in g["tag"]] for g in await wecom_client.get_corp_tags()
    }
    assert library == {"客户等级": ["VIP", "普通"], "SCRM": ["新客"], "渠道": ["展会"]}
    contact = await wecom_client.get_external_contact("wmAlice")
    assert {t["tag_name"] for t in contact["follow_user"][0]["tags"]} == {"VIP", "新客", "展会"}
    row = await row_of(db, row_id)
    assert row.state is OutboxState.SENT
    assert len(row.platform_ids["add_tag"]) == 3


async def test_removing_takes_tags_off_and_never_creates_any(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, tags: TagChannel
) -> None:
    group = fake_wecom.add_tag_group("SCRM", ["新客", "沉默"])
    fake_wecom.update_follow("wmAlice", "zhangsan", tag_ids=list(group.tag_ids))
    await put_tags(db, clock, "tags:1", remove=["新客", "从未有过"])
    await put_tags(db, clock, "tags:2", remove=["另一个从未有过"])

    assert (await sender_of(db, clock, tags).run_once()).sent == 2

    assert tag_names(fake_wecom) == {"SCRM/沉默"}
    assert fake_wecom.calls_to("externalcontact/add_corp_tag") == []
    assert len(fake_wecom.calls_to("externalcontact/mark_tag")) == 1  # nothing left for #2


async def test_a_bare_name_in_several_groups_fails_with_the_fix(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, tags: TagChannel
) -> None:
    fake_wecom.add_tag_group("兴趣", ["咖啡"])
    fake_wecom.add_tag_group("偏好", ["咖啡"])
    row_id = await put_tags(db, clock, "tags:1", add=["咖啡"])

    await sender_of(db, clock, tags).run_once()

    row = await row_of(db, row_id)
    assert row.state is OutboxState.FAILED
    assert "偏好, 兴趣" in (row.last_error or "")
    assert "'group/咖啡'" in (row.last_error or "")


async def test_a_tag_deleted_since_the_library_was_read_is_retried_afresh(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, tags: TagChannel
) -> None:
    group = fake_wecom.add_tag_group("SCRM", ["新客"])
    sender = sender_of(db, clock, tags)
    await put_tags(db, clock, "tags:1", add=["新客"])
    await sender.run_once()  # the library is read and kept
    fake_wecom.delete_tag(group.tag_ids[0])
    row_id = await put_tags(db, clock, "tags:2", add=["新客"])

    await sender.run_once()
    row = await row_of(db, row_id)
    assert (row.state, row.last_errcode) == (OutboxState.PENDING, 40068)
    clock.set(row.due_at)
    await sender.run_once()

    assert (await row_of(db, row_id)).state is OutboxState.SENT
    assert len(fake_wecom.calls_to("externalcontact/get_corp_tag_list")) == 2
    assert tag_names(fake_wecom) == {"SCRM/新客"}
    assert fake_wecom.tag_named("新客").id != group.tag_ids[0]


async def test_a_tag_another_process_created_meanwhile_is_used_not_duplicated(
    db: Database,
    clock: ManualClock,
    fake_wecom: FakeWecom,
    tags: TagChannel,
    wecom_client: WecomClient,
) -> None:
    fake_wecom.add_tag_group("SCRM", ["老客"])
    sender = sender_of(db, clock, tags)
    await put_tags(db, clock, "tags:1", add=["老客"])
    await sender.run_once()  # the library is read and kept: no 新客 yet
    other = TagChannel(wecom_client, clock, default_group="SCRM")
    await put_tags(db, clock, "tags:2", add=["新客"])
    await sender_of(db, clock, other).run_once()  # "another process" creates 新客
    await put_tags(db, clock, "tags:3", add=["新客"])

    assert (await sender.run_once()).sent == 1

    creations = fake_wecom.calls_to("externalcontact/add_corp_tag")
    assert [c.errcode for c in creations] == [0, 40071]
    assert len([t for t in fake_wecom.tags.values() if t.name == "新客"]) == 1
    assert tag_names(fake_wecom) == {"SCRM/老客", "SCRM/新客"}


async def test_a_customer_the_staff_member_does_not_have_fails_the_row(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, tags: TagChannel
) -> None:
    fake_wecom.add_tag_group("SCRM", ["新客"])
    payload = mark_tag(userid="lisi", external_userid="wmAlice", add=["新客"])
    row_id = await put(db, clock, "tags:1", payload, channel=TAG, recipient="wmAlice")

    await sender_of(db, clock, tags).run_once()

    row = await row_of(db, row_id)
    assert (row.state, row.last_errcode) == (OutboxState.FAILED, 84061)


def test_mark_tag_payloads_are_checked_when_built() -> None:
    with pytest.raises(ValueError, match="adds and removes nothing"):
        mark_tag(userid="zhangsan", external_userid="wmAlice")
    with pytest.raises(ValueError, match="1 to 30 characters"):
        mark_tag(userid="zhangsan", external_userid="wmAlice", add=["组/"])
    with pytest.raises(ValueError, match="both added and removed"):
        mark_tag(userid="zhangsan", external_userid="wmAlice", add=["a"], remove=["a"])
    assert mark_tag(userid="u", external_userid="wm", add=["a", "a"])["add"] == ["a"]
