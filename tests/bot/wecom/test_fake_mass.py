"""The fake WeCom's mass-message APIs answer with the platform's shapes, limits and errcodes."""

from __future__ import annotations

from typing import Any

import pytest

from bot.wecom import WecomApiError, WecomClient
from tests.support.clock import ManualClock
from tests.support.fake_wecom import FakeWecom


@pytest.fixture(autouse=True)
def people(fake_wecom: FakeWecom) -> None:
    fake_wecom.add_staff("zhangsan", "张三")
    fake_wecom.add_staff("lisi", "李四")
    for name in ("Alice", "Bob", "Carol"):
        fake_wecom.add_customer(f"wm{name}", name, follow=["zhangsan"])


def _body(**fields: Any) -> dict[str, Any]:
    return {"sender": "zhangsan", "text": {"content": "hi"}, **fields}


async def _errcode(call: Any) -> int | None:
    with pytest.raises(WecomApiError) as caught:
        await call
    return caught.value.errcode


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (_body(chat_type="broadcast"), 40058),
        ({"sender": "zhangsan", "external_userid": ["wmAlice"]}, 40063),
        (_body(text={"content": "长" * 1400}, external_userid=["wmAlice"]), 45002),
        (_body(attachments=[{"msgtype": "image", "image": {}}] * 10), 40058),
        (_body(attachments=[{"msgtype": "voice", "voice": {}}]), 40058),
        (_body(sender="ghost", external_userid=["wmAlice"]), 40003),
        (_body(sender="lisi", external_userid=["wmAlice"]), 40096),
        ({"chat_type": "group", "text": {"content": "hi"}}, 41009),
        (_body(chat_type="group", chat_id_list=["wrNone"]), 40050),
    ],
)
async def test_add_msg_template_refuses_what_the_platform_refuses(
    wecom_client: WecomClient, body: dict[str, Any], errcode: int
) -> None:
    assert await _errcode(wecom_client.add_msg_template(body)) == errcode


async def test_task_list_and_results_follow_the_staff_member(
    fake_wecom: FakeWecom, wecom_client: WecomClient, clock: ManualClock
) -> None:
    answer = await wecom_client.add_msg_template(
        _body(external_userid=["wmAlice", "wmBob", "wmGhost"])
    )
    msgid = answer["msgid"]
    assert answer["fail_list"] == ["wmGhost"]
    task = await wecom_client.get_groupmsg_task(msgid)
    assert task["task_list"] == [{"userid": "zhangsan", "status": 0}]
    before = await wecom_client.get_groupmsg_send_result(msgid, "zhangsan")
    assert {(r["external_userid"], r["status"]) for r in before["send_list"]} == {
        ("wmAlice", 0),
        ("wmBob", 0),
    }

    fake_wecom.remove_follow("wmBob", "zhangsan")
    fake_wecom.confirm_mass(msgid)

    now = int(clock.now().timestamp())
    task = await wecom_client.get_groupmsg_task(msgid)
    assert task == {
        "errcode": 0,
        "errmsg": "ok",
        "next_cursor": "",
        "task_list": [{"userid": "zhangsan", "status": 2, "send_time": now}],
    }
    after = await wecom_client.get_groupmsg_send_result(msgid, "zhangsan")
    assert after["send_list"] == [
        {"external_userid": "wmAlice", "userid": "zhangsan", "status": 1, "send_time": now},
        {"external_userid": "wmBob", "userid": "zhangsan", "status": 2},
    ]


async def test_without_a_sender_each_customer_goes_to_their_first_staff_member(
    fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    fake_wecom.add_customer("wmDave", "Dave", follow=["lisi", "zhangsan"])
    answer = await wecom_client.add_msg_template(
        {"text": {"content": "hi"}, "external_userid": ["wmAlice", "wmDave"]}
    )

    task = await wecom_client.get_groupmsg_task(answer["msgid"])

    assert [t["userid"] for t in task["task_list"]] == ["lisi", "zhangsan"]
    with pytest.raises(ValueError, match="name one"):
        fake_wecom.confirm_mass(answer["msgid"])


async def test_cursors_page_through_the_results(
    fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    msgid = (await wecom_client.add_msg_template(_body()))["msgid"]  # every customer of hers
    seen: list[str] = []
    cursor = ""
    for _ in range(3):
        page = await wecom_client.get_groupmsg_send_result(
            msgid, "zhangsan", cursor=cursor, limit=2
        )
        seen += [r["external_userid"] for r in page["send_list"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["wmAlice", "wmBob", "wmCarol"]
    bad = wecom_client.get_groupmsg_send_result(msgid, "zhangsan", cursor="bm9wZQ==")
    assert await _errcode(bad) == 40058


async def test_group_results_list_only_the_groups_sent_to(
    fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    fake_wecom.add_group("wrA", owner="zhangsan")
    fake_wecom.add_group("wrB", owner="zhangsan")
    msgid = (await wecom_client.add_msg_template(_body(chat_type="group")))["msgid"]
    assert (await wecom_client.get_groupmsg_send_result(msgid, "zhangsan"))["send_list"] == []

    fake_wecom.confirm_mass(msgid, chat_ids=["wrB"])

    page = await wecom_client.get_groupmsg_send_result(msgid, "zhangsan")
    assert [(r["chat_id"], r["status"]) for r in page["send_list"]] == [("wrB", 1)]


async def test_the_list_shows_api_created_messages_within_a_month(
    fake_wecom: FakeWecom, wecom_client: WecomClient, clock: ManualClock
) -> None:
    msgid = (await wecom_client.add_msg_template(_body(external_userid=["wmAlice"])))["msgid"]
    now = int(clock.now().timestamp())
    query = {"chat_type": "single", "start_time": now - 60, "end_time": now + 60}

    page = await wecom_client.get_groupmsg_list_v2(query)

    assert page["group_msg_list"] == [
        {"msgid": msgid, "create_time": now, "create_type": 0, "text": {"content": "hi"}}
    ]
    assert (await wecom_client.get_groupmsg_list_v2({**query, "chat_type": "group"}))[
        "group_msg_list"
    ] == []
    too_long = {**query, "start_time": now - 40 * 86400}
    assert await _errcode(wecom_client.get_groupmsg_list_v2(too_long)) == 40058


async def test_reminders_are_limited_to_three_a_day_and_cancel_withdraws(
    fake_wecom: FakeWecom, wecom_client: WecomClient, clock: ManualClock
) -> None:
    msgid = (await wecom_client.add_msg_template(_body(external_userid=["wmAlice"])))["msgid"]
    for _ in range(3):
        await wecom_client.remind_groupmsg_send(msgid)
    assert await _errcode(wecom_client.remind_groupmsg_send(msgid)) == 45009
    clock.advance(24 * 3600 + 1)
    await wecom_client.remind_groupmsg_send(msgid)

    await wecom_client.cancel_groupmsg_send(msgid)

    with pytest.raises(ValueError, match="no mass message"):
        fake_wecom.confirm_mass(msgid)
    assert fake_wecom.outbound.deliveries == []
    assert await _errcode(wecom_client.cancel_groupmsg_send("msgNope")) == 40058


async def test_switchable_faults_apply_to_the_result_apis(
    fake_wecom: FakeWecom, wecom_client: WecomClient
) -> None:
    msgid = (await wecom_client.add_msg_template(_body(external_userid=["wmAlice"])))["msgid"]
    fake_wecom.fail_next("externalcontact/get_groupmsg_task", -1)

    assert await _errcode(wecom_client.get_groupmsg_task(msgid)) == -1
    assert (await wecom_client.get_groupmsg_task(msgid))["task_list"][0]["status"] == 0
    assert [c.errcode for c in fake_wecom.calls_to("externalcontact/get_groupmsg_task")] == [-1, 0]
