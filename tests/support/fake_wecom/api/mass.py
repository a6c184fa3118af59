"""Mass messages (企业群发): ``add_msg_template`` and the result APIs (DOC 92135, 93338).

``add_msg_template`` is checked as the platform checks it: chat_type single or group (40058),
text or attachments (40063), text at most 4000 bytes (45002), at most 9 well-formed
attachments (40058), the sender an active staff member (40003; required for groups, 41009),
at most 10,000 customers or 2,000 groups (40058). Customers who are not the sender's contacts
(or unknown) and groups the sender does not own go to ``fail_list``; when nobody is left the
call fails (40096 for customers, 40050 for groups). Without a sender each customer's task goes
to the first staff member who added them. The results APIs page with opaque cursors; an
unknown msgid answers 40058. ``remind_groupmsg_send`` allows 3 reminders per message in 24 h
(the fourth gets 45009: the docs name the limit, not its errcode).
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route, required_body
from tests.support.fake_wecom.mass_state import (
    NOT_SENT,
    MassMessage,
    MassTarget,
    MassTask,
)

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp

MAX_TEXT_BYTES = 4000
MAX_ATTACHMENTS = 9
MAX_CUSTOMERS = 10_000
MAX_GROUPS = 2_000
ATTACHMENT_TYPES = {"image", "link", "miniprogram", "video", "file"}
LIST_SPAN = timedelta(days=31)


def add_msg_template(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    chat_type = body.get("chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise ApiFailure(40058, "chat_type must be single or group")
    _check_content(body)
    sender = body.get("sender") or None
    if sender is not None and (sender not in corp.staff or corp.staff[sender].status != 1):
        raise ApiFailure(40003, f"sender {sender!r} is not an active staff member")
    if chat_type == "group":
        if sender is None:
            raise ApiFailure(41009, "sender is required for chat_type group")
        tasks, failed = _group_tasks(corp, sender, body.get("chat_id_list"))
    else:
        tasks, failed = _customer_tasks(corp, sender, body.get("external_userid"))
    message = MassMessage(corp.mass.new_msgid(), chat_type, dict(body), corp.now())
    message.tasks = {userid: MassTask(userid, targets) for userid, targets in tasks.items()}
    corp.mass.messages[message.msgid] = message
    return {"fail_list": failed, "msgid": message.msgid}


def get_groupmsg_list_v2(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    chat_type = required_body(request, "chat_type")
    start, end = required_body(request, "start_time"), required_body(request, "end_time")
    if chat_type not in ("single", "group"):
        raise ApiFailure(40058, "chat_type must be single or group")
    if not isinstance(start, int) or not isinstance(end, int) or end < start:
        raise ApiFailure(40058, "start_time and end_time must be epoch seconds, start <= end")
    if end - start > LIST_SPAN.total_seconds():
        raise ApiFailure(40058, "start_time and end_time may be at most one month apart")
    filter_type = body.get("filter_type", 2)
    if filter_type not in (0, 1, 2):
        raise ApiFailure(40058, "filter_type must be 0, 1 or 2")
    found = [
        m.to_api()
        for m in corp.mass.messages.values()
        if m.chat_type == chat_type
        and start <= int(m.created_at.timestamp()) <= end
        and not body.get("creator")  # API-created messages have no creator
        and filter_type != 1  # ... and are all enterprise-created
    ]
    page, cursor = _page(found, body, "list", most=100, default=50)
    return {"next_cursor": cursor, "group_msg_list": page}


def get_groupmsg_task(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    message = _message(corp, request)
    tasks = []
    for task in sorted(message.tasks.values(), key=lambda t: t.userid):
        entry: dict[str, Any] = {"userid": task.userid, "status": task.status}
        if task.send_time is not None:
            entry["send_time"] = int(task.send_time.timestamp())
        tasks.append(entry)
    page, cursor = _page(tasks, request.body or {}, message.msgid, most=1000, default=500)
    return {"next_cursor": cursor, "task_list": page}


def get_groupmsg_send_result(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    message = _message(corp, request)
    userid = required_body(request, "userid")
    task = message.tasks.get(str(userid))
    targets = list(task.targets.values()) if task is not None else []
    if message.chat_type == "group":  # unsent groups are not listed: nobody chose them yet
        targets = [t for t in targets if t.status != NOT_SENT]
    key = "chat_id" if message.chat_type == "group" else "external_userid"
    results = [_result(key, str(userid), t) for t in targets]
    page, cursor = _page(results, request.body or {}, f"{message.msgid}/{userid}", 1000, 500)
    return {"next_cursor": cursor, "send_list": page}


def remind_groupmsg_send(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    message = _message(corp, request)
    if not corp.mass.remind(message, corp.now()):
        raise ApiFailure(45009, "at most 3 reminders per mass message in 24 hours")
    return {}


def cancel_groupmsg_send(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    message = _message(corp, request)
    if message.cancelled_at is None:
        message.cancelled_at = corp.now()
    return {}


def _check_content(body: dict[str, Any]) -> None:
    text = body.get("text")
    content = text.get("content") if isinstance(text, dict) else None
    attachments = body.get("attachments") or []
    if not content and not attachments:
        raise ApiFailure(40063, "text or attachments is required")
    if content and len(str(content).encode("utf-8")) > MAX_TEXT_BYTES:
        raise ApiFailure(45002)
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise ApiFailure(40058, f"attachments must be a list of at most {MAX_ATTACHMENTS}")
    for item in attachments:
        kind = item.get("msgtype") if isinstance(item, dict) else None
        if kind not in ATTACHMENT_TYPES or not isinstance(item.get(kind), dict):
            raise ApiFailure(40058, f"attachment {item!r} has no valid msgtype")


def _customer_tasks(
    corp: FakeCorp, sender: str | None, ids: Any
) -> tuple[dict[str, dict[str, MassTarget]], list[str]]:
    if ids is None:
        if sender is None:
            raise ApiFailure(40063, "external_userid or sender is required")
        ids = [c.external_userid for c in corp.customers.values() if sender in c.follows]
    if not isinstance(ids, list) or len(ids) > MAX_CUSTOMERS:
        raise ApiFailure(40058, f"external_userid must be a list of at most {MAX_CUSTOMERS}")
    tasks: dict[str, dict[str, MassTarget]] = {}
    failed: list[str] = []
    for external_userid in dict.fromkeys(str(i) for i in ids):
        customer = corp.customers.get(external_userid)
        owner = sender
        if customer is not None and owner is None and customer.follows:
            owner = next(iter(customer.follows))
        if customer is None or owner is None or owner not in customer.follows:
            failed.append(external_userid)
            continue
        tasks.setdefault(owner, {})[external_userid] = MassTarget(external_userid)
    if not tasks:
        raise ApiFailure(40096, f"none of {failed} is a contact of {sender!r}")
    return tasks, failed


def _group_tasks(
    corp: FakeCorp, sender: str, ids: Any
) -> tuple[dict[str, dict[str, MassTarget]], list[str]]:
    if ids is None:  # the sender picks among their groups when confirming
        return {sender: {}}, []
    if not isinstance(ids, list) or len(ids) > MAX_GROUPS:
        raise ApiFailure(40058, f"chat_id_list must be a list of at most {MAX_GROUPS}")
    targets: dict[str, MassTarget] = {}
    failed: list[str] = []
    for chat_id in dict.fromkeys(str(i) for i in ids):
        group = corp.groups.get(chat_id)
        if group is None or group.owner != sender:
            failed.append(chat_id)
        else:
            targets[chat_id] = MassTarget(chat_id)
    if not targets:
        raise ApiFailure(40050, f"none of {failed} is a group owned by {sender!r}")
    return {sender: targets}, failed


def _message(corp: FakeCorp, request: ApiRequest) -> MassMessage:
    msgid = required_body(request, "msgid")
    message = corp.mass.messages.get(str(msgid))
    if message is None:
        raise ApiFailure(40058, f"unknown msgid {msgid!r}")
    return message


def _result(key: str, userid: str, target: MassTarget) -> dict[str, Any]:
    entry: dict[str, Any] = {key: target.recipient, "userid": userid, "status": target.status}
    if target.send_time is not None:
        entry["send_time"] = int(target.send_time.timestamp())
    return entry


def _page(
    items: list[dict[str, Any]], body: dict[str, Any], scope: str, most: int, default: int
) -> tuple[list[dict[str, Any]], str]:
    """One page of ``items`` from ``body['cursor']``; the platform takes the default limit
    when the one asked for is out of range."""
    limit = body.get("limit", default)
    if not isinstance(limit, int) or not 1 <= limit <= most:
        limit = default
    start = _offset(body.get("cursor") or "", scope)
    end = start + limit
    return items[start:end], _cursor(scope, end) if end < len(items) else ""


def _cursor(scope: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{scope}|{offset}".encode()).decode()


def _offset(cursor: str, scope: str) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        cursor_scope, _, offset = text.rpartition("|")
        if cursor_scope != scope:
            raise ValueError(cursor_scope)
        return int(offset)
    except ValueError:
        raise ApiFailure(40058, f"invalid cursor {cursor!r}") from None


ROUTES = [
    Route("externalcontact/add_msg_template", "POST", add_msg_template),
    Route("externalcontact/get_groupmsg_list_v2", "POST", get_groupmsg_list_v2),
    Route("externalcontact/get_groupmsg_task", "POST", get_groupmsg_task),
    Route("externalcontact/get_groupmsg_send_result", "POST", get_groupmsg_send_result),
    Route("externalcontact/remind_groupmsg_send", "POST", remind_groupmsg_send),
    Route("externalcontact/cancel_groupmsg_send", "POST", cancel_groupmsg_send),
]
