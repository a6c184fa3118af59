from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.processing.aibot_messages import AibotEvent, AibotMessage
from bot.processing.messages import (
    ClickEvent,
    EnterAgentEvent,
    FileMessage,
    ImageMessage,
    LinkMessage,
    LocationMessage,
    SubscribeEvent,
    TextMessage,
    UnknownMessage,
    ViewEvent,
    VoiceMessage,
)
from bot.processing.parse import PayloadError, parse_payload
from bot.processing.wecom_events import (
    ContactChangeEvent,
    ExternalChatEvent,
    ExternalContactEvent,
    ExternalTagEvent,
    SelectedItem,
    TemplateCardEvent,
)
from tests.bot.processing import samples


def test_doc_92130_add_external_contact() -> None:
    msg = parse_payload("wecom:sales", "xml", samples.DOC_92130_ADD_EXTERNAL_CONTACT)
    assert msg == ExternalContactEvent(
        route="wecom:event:change_external_contact:add_external_contact",
        sender="sys",
        created_at=datetime(2014, 6, 24, 11, 48, 33, tzinfo=UTC),
        change_type="add_external_contact",
        userid="zhangsan",
        external_userid="woAJ2GCAAAXtWyujaWJHDDGi0mAAAA",
        state="teststate",
        welcome_code="WELCOMECODE",
    )


@pytest.mark.parametrize(
    ("change_type", "fields", "expected"),
    [
        ("edit_external_contact", {}, {}),
        (
            "del_external_contact",
            {"Source": "DELETE_BY_TRANSFER"},
            {"change_source": "DELETE_BY_TRANSFER"},
        ),
        ("del_follow_user", {}, {}),
        (
            "add_half_external_contact",
            {"State": "s1", "WelcomeCode": "W"},
            {"state": "s1", "welcome_code": "W"},
        ),
        ("transfer_fail", {"FailReason": "customer_refused"}, {"fail_reason": "customer_refused"}),
        ("msg_audit_approved", {}, {}),
    ],
)
def test_every_external_contact_change_type(
    change_type: str, fields: dict[str, str], expected: dict[str, str]
) -> None:
    msg = parse_payload("wecom:sales", "xml", samples.external_contact(change_type, **fields))
    assert isinstance(msg, ExternalContactEvent)
    assert msg.route == f"wecom:event:change_external_contact:{change_type}"
    assert (msg.change_type, msg.userid, msg.external_userid) == (
        change_type,
        "zhangsan",
        "wmCustomer0001",
    )
    for name, value in expected.items():
        assert getattr(msg, name) == value


def test_doc_92130_chat_update_add_member() -> None:
    msg = parse_payload("wecom:sales", "xml", samples.DOC_92130_CHAT_ADD_MEMBER)
    assert isinstance(msg, ExternalChatEvent)
    assert msg.route == "wecom:event:change_external_chat:update:add_member"
    assert msg.chat_id == "wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ"
    assert (msg.join_scene, msg.quit_scene, msg.mem_change_cnt) == (1, 0, 10)
    assert msg.members == ("Jack", "Rose")
    assert msg.last_mem_ver == "9c3f97c2ada667dfb5f6d03308d963e1"
    assert msg.cur_mem_ver == "71217227bbd112ecfe3a49c482195cb4"


@pytest.mark.parametrize(
    "detail", ["add_member", "del_member", "change_owner", "change_name", "change_notice"]
)
def test_every_chat_update_detail(detail: str) -> None:
    msg = parse_payload("wecom:sales", "xml", samples.members_changed(detail, ["wmA"], scene=1))
    assert isinstance(msg, ExternalChatEvent)
    assert msg.route == f"wecom:event:change_external_chat:update:{detail}"
    assert msg.update_detail == detail


def test_single_member_and_comma_joined_member_lists() -> None:
    one = parse_payload("wecom:sales", "xml", samples.members_changed("del_member", ["wmA"]))
    joined = parse_payload(
        "wecom:sales",
        "xml",
        samples.external_chat("update", UpdateDetail="add_member", MemChangeList="wmA,wmB"),
    )
    assert isinstance(one, ExternalChatEvent) and one.members == ("wmA",)
    assert isinstance(joined, ExternalChatEvent) and joined.members == ("wmA", "wmB")


@pytest.mark.parametrize("change_type", ["create", "dismiss"])
def test_chat_create_and_dismiss(change_type: str) -> None:
    msg = parse_payload("wecom:sales", "xml", samples.external_chat(change_type))
    assert isinstance(msg, ExternalChatEvent)
    assert msg.route == f"wecom:event:change_external_chat:{change_type}"
    assert msg.members == ()


@pytest.mark.parametrize("change_type", ["create", "update", "delete", "shuffle"])
def test_external_tag(change_type: str) -> None:
    payload = samples.event(
        "change_external_tag", Id="etTag1", TagType="tag", ChangeType=change_type, StrategyId=1
    )
    msg = parse_payload("wecom:sales", "xml", payload)
    assert msg == ExternalTagEvent(
        route=f"wecom:event:change_external_tag:{change_type}",
        sender="sys",
        created_at=datetime.fromtimestamp(samples.CREATE_TIME, tz=UTC),
        change_type=change_type,
        tag_id="etTag1",
        tag_type="tag",
        strategy_id="1",
    )


def test_doc_90240_template_card_event() -> None:
    msg = parse_payload("wecom:sales", "xml", samples.DOC_90240_TEMPLATE_CARD)
    assert isinstance(msg, TemplateCardEvent)
    assert msg.route == "wecom:event:template_card_event"
    assert (msg.sender, msg.event_key, msg.task_id) == ("FromUser", "key111", "taskid111")
    assert (msg.card_type, msg.response_code, msg.agent_id) == (
        "text_notice",
        "ResponseCode",
        1,
    )
    assert msg.selected_items == (
        SelectedItem(question_key="QuestionKey1", option_ids=("OptionId1", "OptionId2")),
        SelectedItem(question_key="QuestionKey2", option_ids=("OptionId3",)),
    )


def test_change_contact() -> None:
    payload = samples.event(
        "change_contact",
        ChangeType="update_user",
        UserID="zhangsan",
        NewUserID="zhangsan2",
        Name="张三",
        Department="1,2,3",
        MainDepartment=1,
        Position="产品经理",
        Status=1,
    )
    msg = parse_payload("wecom:sales", "xml", payload)
    assert isinstance(msg, ContactChangeEvent)
    assert msg.route == "wecom:event:change_contact:update_user"
    assert (msg.userid, msg.new_userid, msg.name) == ("zhangsan", "zhangsan2", "张三")
    assert (msg.departments, msg.main_department, msg.status) == ((1, 2, 3), 1, 1)


def test_app_messages_through_wechatpy() -> None:
    text = parse_payload("wecom:sales", "xml", samples.app_message("text", Content="你好"))
    image = parse_payload(
        "wecom:sales", "xml", samples.app_message("image", PicUrl="http://p", MediaId="M")
    )
    voice = parse_payload(
        "wecom:sales", "xml", samples.app_message("voice", MediaId="V", Format="amr")
    )
    location = parse_payload(
        "wecom:sales",
        "xml",
        samples.app_message(
            "location", Location_X="23.13", Location_Y="113.26", Scale=20, Label="广州"
        ),
    )
    link = parse_payload(
        "wecom:sales",
        "xml",
        samples.app_message("link", Title="T", Description="D", Url="http://u", PicUrl="http://i"),
    )
    file = parse_payload("wecom:sales", "xml", samples.app_message("file", MediaId="F"))
    assert isinstance(text, TextMessage) and text.content == "你好" and text.msg_id == "1"
    assert text.agent_id == 1000002 and text.sender == "zhangsan"
    assert isinstance(image, ImageMessage) and (image.pic_url, image.media_id) == ("http://p", "M")
    assert isinstance(voice, VoiceMessage) and voice.format == "amr"
    assert isinstance(location, LocationMessage)
    assert (location.latitude, location.longitude, location.label) == (23.13, 113.26, "广州")
    assert isinstance(link, LinkMessage) and (link.url, link.pic_url) == ("http://u", "http://i")
    assert isinstance(file, FileMessage) and file.route == "wecom:msg:file"


def test_app_events() -> None:
    enter = parse_payload("wecom:sales", "xml", samples.event("enter_agent", sender="zhangsan"))
    click = parse_payload(
        "wecom:sales", "xml", samples.event("click", sender="zs", EventKey="menu1", AgentID=1)
    )
    view = parse_payload(
        "wecom:sales", "xml", samples.event("view", sender="zs", EventKey="http://x")
    )
    assert isinstance(enter, EnterAgentEvent) and enter.sender == "zhangsan"
    assert isinstance(click, ClickEvent) and (click.event_key, click.agent_id) == ("menu1", 1)
    assert isinstance(view, ViewEvent) and view.event_key == "http://x"


def test_mp_subscribe_with_qr_scene_in_xml_and_json() -> None:
    fields = {
        "ToUserName": "gh_1",
        "FromUserName": "oOpenid1",
        "CreateTime": 1700000000,
        "MsgType": "event",
        "Event": "subscribe",
        "EventKey": "qrscene_spring",
    }
    from_xml = parse_payload("mp:shop", "xml", samples.xml(**fields))
    from_json = parse_payload("mp:shop", "json", json.dumps(fields))
    assert isinstance(from_xml, SubscribeEvent)
    assert from_xml.route == "mp:event:subscribe" and from_xml.scene == "spring"
    assert from_json == from_xml


def test_aibot_group_text_mixed_and_events() -> None:
    text = parse_payload(
        "aibot:helper", "json", samples.aibot("text", text={"content": "@RobotA hello robot"})
    )
    mixed = parse_payload(
        "aibot:helper",
        "json",
        samples.aibot(
            "mixed",
            mixed={
                "msg_item": [
                    {"msgtype": "text", "text": {"content": "@机器人 这是今日的测试情况"}},
                    {"msgtype": "image", "image": {"url": "https://img "}},
                ]
            },
        ),
    )
    card = parse_payload(
        "aibot:helper",
        "json",
        samples.aibot(
            "event",
            event={
                "eventtype": "template_card_event",
                "template_card_event": {
                    "card_type": "vote_interaction",
                    "event_key": "button_replace_text",
                    "task_id": "fBmj",
                    "selected_items": {
                        "selected_item": [
                            {"question_key": "q1", "option_ids": {"option_id": ["o1"]}}
                        ]
                    },
                },
            },
        ),
    )
    enter = parse_payload(
        "aibot:helper",
        "json",
        samples.aibot("event", chattype="single", event={"eventtype": "enter_chat"}),
    )
    assert isinstance(text, AibotMessage)
    assert (text.route, text.chat_type, text.chat_id, text.sender) == (
        "aibot:msg:text",
        "group",
        "CHATID",
        "zhangsan",
    )
    assert text.content == "@RobotA hello robot"
    assert isinstance(mixed, AibotMessage)
    assert mixed.content == "@机器人 这是今日的测试情况" and mixed.urls == ("https://img",)
    assert isinstance(card, TemplateCardEvent) and card.route == "aibot:event:template_card_event"
    assert (card.event_key, card.task_id, card.card_type) == (
        "button_replace_text",
        "fBmj",
        "vote_interaction",
    )
    assert card.selected_items == (SelectedItem(question_key="q1", option_ids=("o1",)),)
    assert isinstance(enter, AibotEvent) and enter.event_type == "enter_chat"


@pytest.mark.parametrize(
    ("source", "content_type", "payload", "route"),
    [
        ("wecom:sales", "xml", samples.event("batch_job_result"), "wecom:event:batch_job_result"),
        ("wecom:sales", "xml", samples.event("brand_new_event"), "wecom:event:brand_new_event"),
        ("wecom:sales", "xml", samples.app_message("hologram"), "wecom:msg:hologram"),
        ("mp:shop", "xml", samples.app_message("miniprogrampage"), "mp:msg:miniprogrampage"),
        ("archive:corp", "json", '{"seq": 1}', "archive:unknown"),
        ("aibot:helper", "json", '{"msgid": "x"}', "aibot:unknown"),
    ],
)
def test_unknown_types_are_unknown_messages(
    source: str, content_type: str, payload: str, route: str
) -> None:
    msg = parse_payload(source, content_type, payload)
    assert isinstance(msg, UnknownMessage)
    assert msg.route == route
    assert msg.raw


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        ("xml", "<xml><a>unclosed</xml>"),
        ("xml", '<!DOCTYPE x [<!ENTITY e "boom">]><xml><a>&e;</a></xml>'),
        ("json", "[1, 2]"),
        ("yaml", "a: 1"),
    ],
)
def test_unreadable_payloads_raise(content_type: str, payload: str) -> None:
    with pytest.raises(PayloadError):
        parse_payload("wecom:sales", content_type, payload)
