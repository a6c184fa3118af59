"""The client's API methods: what they send and what they hand back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.wecom import WecomClient
from tests.support.clock import ManualClock
from tests.support.fake_wecom import FakeWecom, Follow


@pytest.fixture(autouse=True)
def seed(fake_wecom: FakeWecom, clock: ManualClock) -> None:
    fake_wecom.add_staff("zhangsan", "张三", department=[2, 3], position="销售")
    fake_wecom.add_staff("lisi", "李四")
    fake_wecom.add_tag_group("客户等级", ["VIP", "普通"], group_id="etLevel")
    fake_wecom.add_tag_group("来源", ["展会"], group_id="etSource")
    vip = fake_wecom.tag_named("VIP").id
    fake_wecom.add_customer("wmAlice", "Alice", gender=2, unionid="oUnion1", follow=["lisi"])
    fake_wecom.add_follow(
        "wmAlice",
        "zhangsan",
        remark="Alice 王",
        tags=[vip],
        state="expo2026",
        add_way=1,
        createtime=clock.now() - timedelta(days=1),
    )
    fake_wecom.add_customer("wmBob", "Bob", follow=[Follow("zhangsan", createtime=0)])
    fake_wecom.add_group("wrGroup1", "VIP 群", owner="zhangsan", members=["lisi", "wmAlice"])


async def test_get_external_contact(
    wecom_client: WecomClient, fake_wecom: FakeWecom, clock: ManualClock
) -> None:
    payload = await wecom_client.get_external_contact("wmAlice")

    contact = payload["external_contact"]
    assert (contact["external_userid"], contact["name"], contact["type"]) == (
        "wmAlice",
        "Alice",
        1,
    )
    assert (contact["gender"], contact["unionid"]) == (2, "oUnion1")
    follows = {f["userid"]: f for f in payload["follow_user"]}
    assert set(follows) == {"lisi", "zhangsan"}
    zhangsan = follows["zhangsan"]
    assert zhangsan["remark"] == "Alice 王"
    assert zhangsan["state"] == "expo2026"
    assert zhangsan["createtime"] == int((clock.now() - timedelta(days=1)).timestamp())
    assert zhangsan["tags"] == [
        {
            "group_name": "客户等级",
            "tag_name": "VIP",
            "type": 1,
            "tag_id": fake_wecom.tag_named("VIP").id,
        }
    ]
    [call] = fake_wecom.calls_to("externalcontact/get")
    assert call.method == "GET"
    assert call.query["external_userid"] == "wmAlice"


async def test_list_external_contacts(wecom_client: WecomClient, fake_wecom: FakeWecom) -> None:
    assert await wecom_client.list_external_contacts("zhangsan") == ["wmAlice", "wmBob"]
    assert await wecom_client.list_external_contacts("lisi") == ["wmAlice"]


async def test_staff_without_customers_has_an_empty_list(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    fake_wecom.add_staff("wangwu")

    assert await wecom_client.list_external_contacts("wangwu") == []
    assert fake_wecom.calls_to("externalcontact/list")[0].errcode == 84061


async def test_get_group_chat(wecom_client: WecomClient, fake_wecom: FakeWecom) -> None:
    group = await wecom_client.get_group_chat("wrGroup1")

    assert (group["chat_id"], group["name"], group["owner"]) == ("wrGroup1", "VIP 群", "zhangsan")
    members = {m["userid"]: m for m in group["member_list"]}
    assert set(members) == {"zhangsan", "lisi", "wmAlice"}
    assert members["wmAlice"]["type"] == 2
    assert members["wmAlice"]["name"] == "Alice"
    assert members["wmAlice"]["invitor"] == {"userid": "zhangsan"}
    assert members["lisi"]["type"] == 1
    assert isinstance(group["member_version"], str)
    [call] = fake_wecom.calls_to("externalcontact/groupchat/get")
    assert call.method == "POST"
    assert call.json == {"chat_id": "wrGroup1", "need_name": 1}


async def test_group_member_version_changes_with_members(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    before = (await wecom_client.get_group_chat("wrGroup1"))["member_version"]
    fake_wecom.add_group_member("wrGroup1", "wmBob", join_scene=3)

    after = await wecom_client.get_group_chat("wrGroup1")

    assert after["member_version"] != before
    assert "wmBob" in {m["userid"] for m in after["member_list"]}


async def test_get_user(wecom_client: WecomClient, fake_wecom: FakeWecom) -> None:
    user = await wecom_client.get_user("zhangsan")

    assert (user["userid"], user["name"], user["position"]) == ("zhangsan", "张三", "销售")
    assert (user["department"], user["main_department"], user["status"]) == ([2, 3], 2, 1)
    assert fake_wecom.calls_to("user/get")[0].query["userid"] == "zhangsan"


async def test_get_corp_tags_all(wecom_client: WecomClient, fake_wecom: FakeWecom) -> None:
    groups = await wecom_client.get_corp_tags()

    assert [(g["group_id"], [t["name"] for t in g["tag"]]) for g in groups] == [
        ("etLevel", ["VIP", "普通"]),
        ("etSource", ["展会"]),
    ]
    assert fake_wecom.calls_to("externalcontact/get_corp_tag_list")[0].json == {}


async def test_get_corp_tags_by_tag_and_by_group(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    vip = fake_wecom.tag_named("VIP").id

    by_tag = await wecom_client.get_corp_tags(tag_ids=[vip])
    by_group = await wecom_client.get_corp_tags(group_ids=["etSource"])

    assert [[t["id"] for t in g["tag"]] for g in by_tag] == [[vip]]
    assert [g["group_id"] for g in by_group] == ["etSource"]
    sent = [c.json for c in fake_wecom.calls_to("externalcontact/get_corp_tag_list")]
    assert sent == [{"tag_id": [vip]}, {"group_id": ["etSource"]}]


async def test_deleted_tags_are_left_out(wecom_client: WecomClient, fake_wecom: FakeWecom) -> None:
    fake_wecom.delete_tag(fake_wecom.tag_named("VIP").id)

    groups = await wecom_client.get_corp_tags(group_ids=["etLevel"])
    contact = await wecom_client.get_external_contact("wmAlice")

    assert [t["name"] for t in groups[0]["tag"]] == ["普通"]
    assert all(f["tags"] == [] for f in contact["follow_user"])


async def test_generic_call_passes_params_and_returns_the_payload(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    payload = await wecom_client.call("GET", "/user/get", params={"userid": "lisi"})

    assert (payload["errcode"], payload["name"]) == (0, "李四")
    assert fake_wecom.calls_to("user/get")[0].query.keys() == {"userid", "access_token"}
