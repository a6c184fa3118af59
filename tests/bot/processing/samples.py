"""Callback plaintexts as the platforms send them, built from fields (no crypto needed)."""

from __future__ import annotations

import json
from typing import Any

CREATE_TIME = 1403610513

#: DOC 92130, "添加企业客户事件", verbatim.
DOC_92130_ADD_EXTERNAL_CONTACT = """<xml>
<ToUserName><![CDATA[toUser]]></ToUserName>
<FromUserName><![CDATA[sys]]></FromUserName>
<CreateTime>1403610513</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[change_external_contact]]></Event>
<ChangeType><![CDATA[add_external_contact]]></ChangeType>
<UserID><![CDATA[zhangsan]]></UserID>
<ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mAAAA]]></ExternalUserID>
<State><![CDATA[teststate]]></State>
<WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode>
</xml>"""

#: DOC 92130, "客户群变更事件" (update, add_member), as documented.
DOC_92130_CHAT_ADD_MEMBER = """<xml>
<ToUserName><![CDATA[toUser]]></ToUserName>
<FromUserName><![CDATA[sys]]></FromUserName>
<CreateTime>1403610513</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[change_external_chat]]></Event>
<ChatId><![CDATA[wrx7HUARsKwGRaQBVKPBTcEyzdHA4HrQ]]></ChatId>
<ChangeType><![CDATA[update]]></ChangeType>
<UpdateDetail><![CDATA[add_member]]></UpdateDetail>
<JoinScene>1</JoinScene>
<QuitScene>0</QuitScene>
<MemChangeCnt>10</MemChangeCnt>
<MemChangeList>
    <Item>Jack</Item>
    <Item>Rose</Item>
</MemChangeList>
<LastMemVer>9c3f97c2ada667dfb5f6d03308d963e1</LastMemVer>
<CurMemVer>71217227bbd112ecfe3a49c482195cb4</CurMemVer>
</xml>"""

#: DOC 90240, template card event (button_interaction with a selection).
DOC_90240_TEMPLATE_CARD = """<xml>
<ToUserName><![CDATA[toUser]]></ToUserName>
<FromUserName><![CDATA[FromUser]]></FromUserName>
<CreateTime>123456789</CreateTime>
<MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[template_card_event]]></Event>
<EventKey><![CDATA[key111]]></EventKey>
<TaskId><![CDATA[taskid111]]></TaskId>
<CardType><![CDATA[text_notice]]></CardType>
<ResponseCode><![CDATA[ResponseCode]]></ResponseCode>
<AgentID>1</AgentID>
<SelectedItems>
    <SelectedItem>
        <QuestionKey><![CDATA[QuestionKey1]]></QuestionKey>
        <OptionIds>
            <OptionId><![CDATA[OptionId1]]></OptionId>
            <OptionId><![CDATA[OptionId2]]></OptionId>
        </OptionIds>
    </SelectedItem>
    <SelectedItem>
        <QuestionKey><![CDATA[QuestionKey2]]></QuestionKey>
        <OptionIds>
            <OptionId><![CDATA[OptionId3]]></OptionId>
        </OptionIds>
    </SelectedItem>
</SelectedItems>
</xml>"""


def _element(name: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_element(key, item) for key, item in value.items())
        return f"<{name}>{inner}</{name}>"
    if isinstance(value, list):
        return "".join(_element(name, item) for item in value)
    if isinstance(value, int):
        return f"<{name}>{value}</{name}>"
    return f"<{name}><![CDATA[{value}]]></{name}>"


def xml(**fields: Any) -> str:
    """``<xml>`` with one element per field, in order; lists repeat, dicts nest."""
    return "<xml>" + "".join(_element(k, v) for k, v in fields.items()) + "</xml>"


def event(event_name: str, *, sender: str = "sys", at: Any = CREATE_TIME, **fields: Any) -> str:
    return xml(
        ToUserName="ww0000fakecorp0001",
        FromUserName=sender,
        CreateTime=at,
        MsgType="event",
        Event=event_name,
        **fields,
    )


def external_contact(
    change_type: str,
    *,
    userid: str = "zhangsan",
    external_userid: str = "wmCustomer0001",
    at: Any = CREATE_TIME,
    **fields: Any,
) -> str:
    return event(
        "change_external_contact",
        at=at,
        ChangeType=change_type,
        UserID=userid,
        ExternalUserID=external_userid,
        **fields,
    )


def external_chat(
    change_type: str, *, chat_id: str = "wrGroup0001", at: int = CREATE_TIME, **fields: Any
) -> str:
    return event("change_external_chat", at=at, ChatId=chat_id, ChangeType=change_type, **fields)


def members_changed(
    detail: str,
    members: list[str],
    *,
    chat_id: str = "wrGroup0001",
    at: int = CREATE_TIME,
    last: str = "",
    cur: str = "",
    scene: int = 0,
) -> str:
    scene_field = {"JoinScene": scene} if detail == "add_member" else {"QuitScene": scene}
    return external_chat(
        "update",
        chat_id=chat_id,
        at=at,
        UpdateDetail=detail,
        **scene_field,
        MemChangeCnt=len(members),
        MemChangeList={"Item": members},
        LastMemVer=last,
        CurMemVer=cur,
    )


def app_message(msg_type: str, *, sender: str = "zhangsan", msg_id: int = 1, **fields: Any) -> str:
    return xml(
        ToUserName="ww0000fakecorp0001",
        FromUserName=sender,
        CreateTime=CREATE_TIME,
        MsgType=msg_type,
        **fields,
        MsgId=msg_id,
        AgentID=1000002,
    )


def aibot(msg_type: str, *, chattype: str = "group", userid: str = "zhangsan", **body: Any) -> str:
    payload: dict[str, Any] = {
        "msgid": "CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=",
        "aibotid": "AIBOTID",
        "chattype": chattype,
        "from": {"userid": userid},
        "response_url": "RESPONSEURL",
        "msgtype": msg_type,
        **body,
    }
    if chattype == "group":
        payload["chatid"] = "CHATID"
    return json.dumps(payload, ensure_ascii=False)
