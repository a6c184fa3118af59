"""Sample plaintexts have the platforms' field shapes (read back through wechatpy's parsers)."""

from __future__ import annotations

import json
from typing import Any

from wechatpy import parse_message as parse_mp
from wechatpy.enterprise import parse_message as parse_wecom

from bot.callback.samples import (
    aibot_text_json,
    customer_added_xml,
    group_join_xml,
    mp_text_json,
    mp_text_xml,
    staff_text_xml,
)


def fields(message: Any) -> dict[str, Any]:
    return dict(message._data)


def test_customer_added_matches_doc_sample() -> None:
    xml = customer_added_xml(
        corp_id="ww1",
        user_id="zhangsan",
        external_user_id="woAJ2GCAAAXtWyujaWJHDDGi0mAAAA",
        state="teststate",
        welcome_code="WELCOMECODE",
        create_time=1403610513,
    )
    data = fields(parse_wecom(xml))
    assert data == {
        "ToUserName": "ww1",
        "FromUserName": "sys",
        "CreateTime": "1403610513",
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "zhangsan",
        "ExternalUserID": "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA",
        "State": "teststate",
        "WelcomeCode": "WELCOMECODE",
    }


def test_group_join_matches_doc_sample() -> None:
    xml = group_join_xml(
        corp_id="ww1",
        chat_id="wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
        member_ids=["Jack", "Rose"],
        create_time=1403610513,
        join_scene=1,
        last_mem_ver="9c3f97c2ada667dfb5f6d03308d963e1",
        cur_mem_ver="71217227bbd112ecfe3a49c482195cb4",
    )
    data = fields(parse_wecom(xml))
    assert data["Event"] == "change_external_chat"
    assert (data["ChangeType"], data["UpdateDetail"]) == ("update", "add_member")
    assert data["MemChangeList"] == {"Item": ["Jack", "Rose"]}
    assert (data["JoinScene"], data["MemChangeCnt"]) == ("1", "2")
    assert data["CurMemVer"] == "71217227bbd112ecfe3a49c482195cb4"


def test_text_messages_parse_as_text() -> None:
    staff = parse_wecom(
        staff_text_xml(
            corp_id="ww1", user_id="lisi", agent_id=7, content="a]]>b", msg_id=9, create_time=1
        )
    )
    assert (staff.type, staff.content, staff.source, staff.agent) == ("text", "a]]>b", "lisi", 7)
    customer = parse_mp(
        mp_text_xml(account_id="gh_1", openid="o1", content="你好", msg_id=3, create_time=1)
    )
    assert (customer.type, customer.content, customer.source, customer.id) == (
        "text",
        "你好",
        "o1",
        3,
    )
    as_json = json.loads(
        mp_text_json(account_id="gh_1", openid="o1", content="你好", msg_id=3, create_time=1)
    )
    assert as_json["FromUserName"] == "o1"
    assert as_json["Content"] == "你好"


def test_aibot_mentions() -> None:
    group = json.loads(
        aibot_text_json(msg_id="m", aibot_id="b", user_id="u", content="@b hi", chat_id="c")
    )
    assert (group["chattype"], group["chatid"], group["from"]["userid"]) == ("group", "c", "u")
    direct = json.loads(aibot_text_json(msg_id="m", aibot_id="b", user_id="u", content="hi"))
    assert direct["chattype"] == "single"
    assert "chatid" not in direct
