from __future__ import annotations

from sop.events import GroupChanged, JoinedGroup, LeftGroup
from store.models import Customer, CustomerGroup, GroupMember, RefreshRequest
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness


async def test_create_then_members_join_and_leave(harness: Harness) -> None:
    await harness.feed(
        samples.external_chat("create"),
        samples.members_changed("add_member", ["wmAlice", "zhangsan"], scene=3, last="", cur="v1"),
        samples.members_changed(
            "del_member", ["wmAlice"], scene=1, last="v1", cur="v2", at=1403610600
        ),
    )
    group = await harness.one(CustomerGroup, chat_id="wrGroup0001")
    assert group.member_version == "v2"
    members = {m.member_userid: m for m in await harness.all(GroupMember)}
    alice = await harness.one(Customer, external_userid="wmAlice")
    assert members["wmAlice"].customer_id == alice.id
    assert members["wmAlice"].join_scene == 3 and members["wmAlice"].member_type == 2
    assert members["wmAlice"].left_at is not None and members["wmAlice"].quit_scene == 1
    assert members["zhangsan"].customer_id is None and members["zhangsan"].left_at is None
    assert [(e.member_userid, e.customer_id) for e in harness.published(JoinedGroup)] == [
        ("wmAlice", alice.id),
        ("zhangsan", None),
    ]
    (left,) = harness.published(LeftGroup)
    assert (left.member_userid, left.customer_id, left.quit_scene) == ("wmAlice", alice.id, 1)
    assert [e.change for e in harness.published(GroupChanged)] == ["create"]
    assert {(r.kind, r.key) for r in await harness.all(RefreshRequest)} == {
        ("group", "wrGroup0001")
    }
    alice_timeline = [e.kind for e in await harness.timeline(customer_id=alice.id)]
    assert alice_timeline == ["joined_group", "left_group"]


async def test_doc_sample_and_repeated_increments_publish_once(harness: Harness) -> None:
    await harness.feed(samples.DOC_92130_CHAT_ADD_MEMBER, samples.DOC_92130_CHAT_ADD_MEMBER)
    assert [e.member_userid for e in harness.published(JoinedGroup)] == ["Jack", "Rose"]
    assert await harness.count(GroupMember) == 2


async def test_reordered_leave_before_join(harness: Harness) -> None:
    await harness.feed(
        samples.members_changed("del_member", ["wmBob"], last="v1", cur="v2"),
        samples.members_changed("add_member", ["wmBob"], last="v0", cur="v1"),
    )
    group = await harness.one(CustomerGroup)
    # The chain broke (v2 then v0): the version is not trusted, the refresh reconciles.
    assert group.member_version == "v2"
    assert await harness.one(RefreshRequest, kind="group")
    assert [e.member_userid for e in harness.published(LeftGroup)] == ["wmBob"]
    assert [e.member_userid for e in harness.published(JoinedGroup)] == ["wmBob"]


async def test_owner_name_notice_changes_and_dismiss(harness: Harness) -> None:
    await harness.feed(
        *(
            samples.external_chat("update", UpdateDetail=d)
            for d in ("change_owner", "change_name", "change_notice", "change_unknown_thing")
        ),
        samples.external_chat("dismiss"),
    )
    changes = [e.change for e in harness.published(GroupChanged)]
    assert changes == ["change_owner", "change_name", "change_notice", "dismiss"]
    group = await harness.one(CustomerGroup)
    assert group.dismissed_at is not None
    kinds = [e.kind for e in await harness.timeline(group_id=group.id)]
    assert kinds == ["group_changed"] * 3 + ["group_updated", "group_dismissed"]
