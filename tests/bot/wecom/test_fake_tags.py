"""The fake's add_corp_tag and mark_tag: the platform's checks and errcodes, state kept."""

from __future__ import annotations

from typing import Any

import pytest

from bot.wecom import WecomApiError, WecomClient
from tests.support.fake_wecom import FakeWecom

ADD = "externalcontact/add_corp_tag"
MARK = "externalcontact/mark_tag"


@pytest.fixture(autouse=True)
def people(fake_wecom: FakeWecom) -> None:
    fake_wecom.add_staff("zhangsan")
    fake_wecom.add_staff("lisi")
    fake_wecom.add_customer("wmAlice", "Alice", follow=["zhangsan"])


async def errcode_of(client: WecomClient, api: str, body: dict[str, Any]) -> int | None:
    with pytest.raises(WecomApiError) as refused:
        await client.call("POST", api, json=body)
    return refused.value.errcode


async def test_add_corp_tag_creates_groups_and_tags_the_list_then_shows(
    fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    created = await wecom_client.add_corp_tag(["新客", "老客"], group_name="SCRM")
    more = await wecom_client.add_corp_tag(["沉默"], group_id=created["group_id"])
    same_name = await wecom_client.add_corp_tag(["流失"], group_name="SCRM")

    assert [t["name"] for t in created["tag"]] == ["新客", "老客"]
    assert more["group_id"] == same_name["group_id"] == created["group_id"]
    [group] = await wecom_client.get_corp_tags()
    assert [t["name"] for t in group["tag"]] == ["新客", "老客", "沉默", "流失"]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"group_name": "SCRM"}, 40063),
        ({"group_name": "SCRM", "tag": []}, 40063),
        ({"tag": [{"name": "新客"}]}, 40063),
        ({"group_name": "SCRM", "tag": [{"name": ""}]}, 40072),
        ({"group_name": "SCRM", "tag": [{"name": "长" * 31}]}, 40072),
        ({"group_name": "长" * 31, "tag": [{"name": "新客"}]}, 40072),
        ({"group_id": "etNoSuchGroup", "tag": [{"name": "新客"}]}, 40068),
        ({"group_name": "SCRM", "tag": [{"name": "老客"}]}, 40071),
        ({"group_name": "SCRM", "tag": [{"name": "甲"}, {"name": "甲"}]}, 40071),
    ],
)
async def test_add_corp_tag_refuses_what_the_platform_refuses(
    fake_wecom: FakeWecom, wecom_client: WecomClient, body: dict[str, Any], errcode: int
) -> None:
    fake_wecom.add_tag_group("SCRM", ["老客"])
    assert await errcode_of(wecom_client, ADD, body) == errcode
    assert [t.name for t in fake_wecom.tags.values()] == ["老客"]


async def test_mark_tag_adds_and_removes_on_the_follow(
    fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    group = fake_wecom.add_tag_group("SCRM", ["新客", "老客"])
    new, old = group.tag_ids

    await wecom_client.mark_tag("zhangsan", "wmAlice", add=[new, old])
    await wecom_client.mark_tag("zhangsan", "wmAlice", add=[new], remove=[old])

    contact = await wecom_client.get_external_contact("wmAlice")
    assert [t["tag_id"] for t in contact["follow_user"][0]["tags"]] == [new]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"userid": "zhangsan", "external_userid": "wmAlice"}, 40063),
        ({"external_userid": "wmAlice", "add_tag": ["T"]}, 41009),
        ({"userid": "zhangsan", "add_tag": ["T"]}, 41035),
        ({"userid": "nobody", "external_userid": "wmAlice", "add_tag": ["T"]}, 60111),
        ({"userid": "zhangsan", "external_userid": "wmNobody", "add_tag": ["T"]}, 40096),
        ({"userid": "lisi", "external_userid": "wmAlice", "add_tag": ["T"]}, 84061),
        ({"userid": "zhangsan", "external_userid": "wmAlice", "add_tag": ["etNone"]}, 40068),
        ({"userid": "zhangsan", "external_userid": "wmAlice", "remove_tag": "T"}, 40058),
    ],
)
async def test_mark_tag_refuses_what_the_platform_refuses(
    fake_wecom: FakeWecom, wecom_client: WecomClient, body: dict[str, Any], errcode: int
) -> None:
    tag = fake_wecom.add_tag_group("SCRM", ["新客"]).tag_ids[0]
    body = {k: [tag if v == "T" else v for v in value] if isinstance(value, list) else value
            for k, value in body.items()}  # fmt: skip
    assert await errcode_of(wecom_client, MARK, body) == errcode
    assert fake_wecom.customers["wmAlice"].follows["zhangsan"].tag_ids == []


async def test_a_deleted_tag_cannot_be_marked(
    fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    tag = fake_wecom.add_tag_group("SCRM", ["新客"]).tag_ids[0]
    fake_wecom.delete_tag(tag)
    body = {"userid": "zhangsan", "external_userid": "wmAlice", "add_tag": [tag]}
    assert await errcode_of(wecom_client, MARK, body) == 40068
