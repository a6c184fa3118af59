"""Customer inheritance (离职继承 / 在职继承): customers, their transfer results, and groups.

``transfer_customer`` (在职) and ``resigned/transfer_customer`` (离职): 1-100 external
userids (41035 when missing, 40058 over 100), both members known (60111) and the successor
active (40003); 离职 needs a handover member who left (status 5, else 40097), 在职 one who
did not (40003), and a ``transfer_success_msg`` of at most 200 characters (40058). Per
customer: 40096 unknown, 84061 not the handover member's customer, 40100 already waiting,
the 90-day limit of 在职 (:data:`~tests.support.fake_wecom.transfer_state.ONJOB_LIMIT`).

``transfer_result`` / ``resigned/transfer_result``: the pair's customers with status and
takeover_time, ``page_size`` a page, ``next_cursor`` empty on the last page.

``groupchat/transfer`` (the owner left) and ``groupchat/onjob_transfer``: 1-100 chat ids,
a known, active ``new_owner``; per group 40050 unknown, 90500 when the 离职 API is asked for
a group whose owner has not left. A moved group shows its new owner in ``groupchat/get``.

``get_unassigned_list``: the customers of members who left and that nobody took over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route, required_body
from tests.support.fake_wecom.transfer_state import (
    IN_TRANSFER,
    ONJOB_LIMIT,
    ONJOB_PER_WINDOW,
    TAKEOVER_DELAY,
    CustomerTransfer,
)

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp

LEFT = 5
BATCH = 100
MESSAGE_LIMIT = 200


def _member(corp: FakeCorp, request: ApiRequest, name: str) -> str:
    userid = required_body(request, name, 41009)
    if not isinstance(userid, str) or userid not in corp.staff:
        raise ApiFailure(60111, f"{name} {userid!r}")
    return userid


def _ids(request: ApiRequest, name: str, missing: int) -> list[str]:
    values = (request.body or {}).get(name)
    if not values:
        raise ApiFailure(missing, f"{name} is required")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ApiFailure(40058, f"{name} must be a list of strings")
    if len(values) > BATCH:
        raise ApiFailure(40058, f"{name} takes at most {BATCH}, got {len(values)}")
    return values


def _transfer(corp: FakeCorp, request: ApiRequest, *, resigned: bool) -> dict[str, Any]:
    handover = _member(corp, request, "handover_userid")
    takeover = _member(corp, request, "takeover_userid")
    external_userids = _ids(request, "external_userid", 41035)
    if corp.staff[takeover].status != 1:
        raise ApiFailure(40003, f"takeover_userid {takeover!r} is not active")
    left = corp.staff[handover].status == LEFT
    if resigned and not left:
        raise ApiFailure(40097, f"handover_userid {handover!r} has not left the company")
    if not resigned and left:
        raise ApiFailure(40003, f"handover_userid {handover!r} left: use resigned/")
    message = (request.body or {}).get("transfer_success_msg")
    if message is not None and (not isinstance(message, str) or len(message) > MESSAGE_LIMIT):
        raise ApiFailure(40058, f"transfer_success_msg takes at most {MESSAGE_LIMIT} characters")
    now = corp.now()
    results = []
    for external_userid in external_userids:
        errcode = _refusal(corp, handover, external_userid, resigned)
        if errcode == 0:
            corp.transfers.transfers.append(
                CustomerTransfer(
                    handover, takeover, external_userid, resigned, now, now + TAKEOVER_DELAY
                )
            )
        results.append({"external_userid": external_userid, "errcode": errcode})
    return {"customer": results}


def _refusal(corp: FakeCorp, handover: str, external_userid: str, resigned: bool) -> int:
    customer = corp.customers.get(external_userid)
    if customer is None:
        return 40096
    if handover not in customer.follows:
        return 84061
    if corp.transfers.waiting(external_userid) is not None:
        return IN_TRANSFER
    if not resigned and corp.transfers.onjob_count(external_userid, corp.now()) >= (
        ONJOB_PER_WINDOW
    ):
        return ONJOB_LIMIT
    return 0


def _result(corp: FakeCorp, request: ApiRequest, *, resigned: bool) -> dict[str, Any]:
    handover = required_body(request, "handover_userid", 41009)
    takeover = required_body(request, "takeover_userid", 41009)
    cursor = (request.body or {}).get("cursor") or "0"
    if not str(cursor).isdigit():
        raise ApiFailure(40058, f"invalid cursor {cursor!r}")
    start = int(cursor)
    records = corp.transfers.of_pair(str(handover), str(takeover), resigned)
    page = records[start : start + corp.transfers.page_size]
    end = start + len(page)
    return {
        "customer": [
            {
                "external_userid": r.external_userid,
                "status": r.status,
                "takeover_time": int(r.takeover_time.timestamp()) if r.status != 3 else 0,
            }
            for r in page
        ],
        "next_cursor": str(end) if end < len(records) else "",
    }


def _groups(corp: FakeCorp, request: ApiRequest, *, resigned: bool) -> dict[str, Any]:
    chat_ids = _ids(request, "chat_id_list", 40063)
    new_owner = _member(corp, request, "new_owner")
    if corp.staff[new_owner].status != 1:
        raise ApiFailure(40003, f"new_owner {new_owner!r} is not active")
    failed = []
    for chat_id in chat_ids:
        group = corp.groups.get(chat_id)
        if group is None:
            failed.append({"chat_id": chat_id, "errcode": 40050, "errmsg": "chatid not found"})
            continue
        owner = corp.staff.get(group.owner)
        if resigned and (owner is None or owner.status != LEFT):
            failed.append(
                {
                    "chat_id": chat_id,
                    "errcode": 90500,
                    "errmsg": "the owner of this chat is not resigned",
                }
            )
            continue
        group.owner = new_owner
        if new_owner not in group.members:
            corp.add_group_member(chat_id, new_owner, invitor=None)
    return {"failed_chat_list": failed}


def get_unassigned_list(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    page_size = body.get("page_size", 1000)
    cursor = body.get("cursor") or "0"
    if not isinstance(page_size, int) or not 1 <= page_size <= 1000 or not str(cursor).isdigit():
        raise ApiFailure(40058, "page_size must be 1-1000, cursor one the API returned")
    info = [
        {
            "handover_userid": userid,
            "external_userid": customer.external_userid,
            "dimission_time": 0,
        }
        for customer in corp.customers.values()
        for userid in customer.follows
        if corp.staff[userid].status == LEFT
        and corp.transfers.waiting(customer.external_userid) is None
    ]
    start = int(cursor)
    page = info[start : start + page_size]
    last = start + len(page) >= len(info)
    return {"info": page, "is_last": last, "next_cursor": "" if last else str(start + len(page))}


ROUTES = [
    Route(
        "externalcontact/transfer_customer",
        "POST",
        lambda c, r: _transfer(c, r, resigned=False),
    ),
    Route(
        "externalcontact/resigned/transfer_customer",
        "POST",
        lambda c, r: _transfer(c, r, resigned=True),
    ),
    Route("externalcontact/transfer_result", "POST", lambda c, r: _result(c, r, resigned=False)),
    Route(
        "externalcontact/resigned/transfer_result",
        "POST",
        lambda c, r: _result(c, r, resigned=True),
    ),
    Route("externalcontact/groupchat/transfer", "POST", lambda c, r: _groups(c, r, resigned=True)),
    Route(
        "externalcontact/groupchat/onjob_transfer",
        "POST",
        lambda c, r: _groups(c, r, resigned=False),
    ),
    Route("externalcontact/get_unassigned_list", "POST", get_unassigned_list),
]
