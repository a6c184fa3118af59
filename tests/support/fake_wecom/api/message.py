"""App messages (应用消息): ``message/send`` and ``message/update_template_card``.

Checked as the platform checks them: agentid (41011 missing, 40056 unknown), recipients
(82001 none given, 81013 none valid; unknown ones listed in ``invaliduser`` otherwise), the
msgtype (40008) and each type's content (44004 empty text, 45002 over 2048 bytes, 41016
missing title, 41033 missing description, 40058 a malformed card). A member who got 30
messages in the last minute (or 1000 in the last hour) gets nothing more: the answer is still
ok, and the delivery is recorded as dropped.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route
from tests.support.fake_wecom.outbound import Delivery

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp

MAX_CONTENT_BYTES = 2048
CARD_TYPES = {
    "text_notice",
    "news_notice",
    "button_interaction",
    "vote_interaction",
    "multiple_interaction",
}
TASK_ID = re.compile(r"^[A-Za-z0-9_\-@]{1,128}$")


def send(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    _check_agent(corp, body)
    users = _recipients(body)
    msgtype = body.get("msgtype")
    if not msgtype:
        raise ApiFailure(40063, "msgtype is required")
    _check_content(str(msgtype), body)
    valid = [u for u in users if u in corp.staff and corp.staff[u].status == 1]
    invalid = [u for u in users if u not in valid]
    if not valid:
        raise ApiFailure(81013)
    msgid = corp.outbound.new_msgid()
    now = corp.now()
    for userid in valid:
        dropped = corp.outbound.over_member_limit(userid, now)
        corp.outbound.deliveries.append(
            Delivery("message/send", userid, dict(body), now, msgid, dropped)
        )
    answer: dict[str, Any] = {
        "invaliduser": "|".join(invalid),
        "invalidparty": "",
        "invalidtag": "",
        "unlicenseduser": "",
        "msgid": msgid,
    }
    if msgtype == "template_card" and body["template_card"]["card_type"].endswith("interaction"):
        answer["response_code"] = f"fakeResp{msgid}"
    return answer


def update_template_card(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    _check_agent(corp, body)
    code = body.get("response_code")
    if not code:
        raise ApiFailure(40063, "response_code is required")
    pressed = corp.outbound.press_codes.get(code)
    sent = [
        d
        for d in corp.outbound.deliveries
        if d.msgid and (f"fakeResp{d.msgid}" == code or d.msgid == pressed)
    ]
    if not sent:
        raise ApiFailure(40058, "unknown response_code")
    userids = body.get("userids") or [d.to for d in sent]
    now = corp.now()
    for userid in userids:
        update = Delivery("message/update_template_card", userid, body, now)
        corp.outbound.deliveries.append(update)
    return {"invaliduser": []}


def _check_agent(corp: FakeCorp, body: dict[str, Any]) -> None:
    agentid = body.get("agentid")
    if agentid is None or agentid == "":
        raise ApiFailure(41011)
    if not isinstance(agentid, int) or agentid not in corp.outbound.agents:
        raise ApiFailure(40056)


def _recipients(body: dict[str, Any]) -> list[str]:
    touser = body.get("touser", "")
    if not isinstance(touser, str):
        raise ApiFailure(40058, "touser must be a string of userids separated by |")
    if not touser and not body.get("toparty") and not body.get("totag"):
        raise ApiFailure(82001)
    return [u for u in touser.split("|") if u]


def _check_content(msgtype: str, body: dict[str, Any]) -> None:
    content = body.get(msgtype)
    if msgtype in ("text", "markdown"):
        text = content.get("content") if isinstance(content, dict) else None
        if not isinstance(text, str) or not text:
            raise ApiFailure(44004)
        if len(text.encode("utf-8")) > MAX_CONTENT_BYTES:
            raise ApiFailure(45002)
    elif msgtype == "textcard":
        if not isinstance(content, dict) or not content.get("title"):
            raise ApiFailure(41016)
        if not content.get("description"):
            raise ApiFailure(41033)
        if not content.get("url"):
            raise ApiFailure(41010)
    elif msgtype == "template_card":
        _check_card(content)
    else:
        raise ApiFailure(40008)


def _check_card(card: Any) -> None:
    if not isinstance(card, dict) or card.get("card_type") not in CARD_TYPES:
        raise ApiFailure(40058, "template_card.card_type is missing or unknown")
    main_title = card.get("main_title")
    title = main_title.get("title") if isinstance(main_title, dict) else None
    if not title and not card.get("sub_title_text"):
        raise ApiFailure(40058, "main_title.title or sub_title_text is required")
    task_id = card.get("task_id")
    interactive = card["card_type"].endswith("interaction")
    if interactive and (not isinstance(task_id, str) or not TASK_ID.match(task_id)):
        raise ApiFailure(42014)
    if card["card_type"] == "button_interaction":
        buttons = card.get("button_list")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
            raise ApiFailure(40058, "button_list needs 1 to 6 buttons")
        for button in buttons:
            if not isinstance(button, dict) or not button.get("text"):
                raise ApiFailure(42020)
            if not button.get("key"):
                raise ApiFailure(42019)


ROUTES = [
    Route("message/send", "POST", send),
    Route("message/update_template_card", "POST", update_template_card),
]
