"""Customer groups (客户群): ``externalcontact/groupchat/get``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route, required_body

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp


def get_group_chat(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    chat_id = required_body(request, "chat_id")
    need_name = (request.body or {}).get("need_name", 0)
    if not isinstance(chat_id, str) or need_name not in (0, 1):
        raise ApiFailure(40058, "chat_id must be a string, need_name 0 or 1")
    group = corp.groups.get(chat_id)
    if group is None:
        raise ApiFailure(40050)
    return {"group_chat": group.to_api(need_name == 1)}


ROUTES = [Route("externalcontact/groupchat/get", "POST", get_group_chat)]
