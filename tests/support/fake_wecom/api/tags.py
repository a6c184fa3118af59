"""Corp customer tags (企业客户标签): ``externalcontact/get_corp_tag_list``.

Neither filter returns every tag; ``group_id`` wins over ``tag_id`` when both are given, as the
platform documents. Deleted tags and groups are left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp


def get_corp_tag_list(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    tag_ids = _id_list(body, "tag_id")
    group_ids = _id_list(body, "group_id")
    result = []
    for group in sorted(corp.tag_groups.values(), key=lambda g: g.order):
        if group.deleted or (group_ids and group.group_id not in group_ids):
            continue
        tags = [corp.tags[t] for t in group.tag_ids if not corp.tags[t].deleted]
        if tag_ids and not group_ids:
            tags = [t for t in tags if t.id in tag_ids]
            if not tags:
                continue
        result.append(
            {
                "group_id": group.group_id,
                "group_name": group.group_name,
                "create_time": group.create_time,
                "order": group.order,
                "deleted": False,
                "tag": [t.to_api() for t in tags],
            }
        )
    return {"tag_group": result}


def _id_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiFailure(40058, f"{name} must be a list of strings")
    return value


ROUTES = [Route("externalcontact/get_corp_tag_list", "POST", get_corp_tag_list)]
