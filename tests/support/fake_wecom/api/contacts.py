"""Customers (客户): ``externalcontact/get`` and ``externalcontact/list``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route, required_query

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp
    from tests.support.fake_wecom.models import Follow


def get_external_contact(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    external_userid = required_query(request, "external_userid", 41035)
    customer = corp.customers.get(external_userid)
    if customer is None or not customer.follows:
        raise ApiFailure(84061)
    return {
        "external_contact": customer.contact_to_api(),
        "follow_user": [_follow_to_api(corp, f) for f in customer.follows.values()],
    }


def list_external_contacts(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    userid = required_query(request, "userid", 41009)
    if userid not in corp.staff:
        raise ApiFailure(60111)
    followed = [c.external_userid for c in corp.customers.values() if userid in c.follows]
    if not followed:
        raise ApiFailure(84061)  # what the platform answers for a member without customers
    return {"external_userid": followed}


def _follow_to_api(corp: FakeCorp, follow: Follow) -> dict[str, Any]:
    tags = []
    for tag_id in follow.tag_ids:
        tag = corp.tags.get(tag_id)
        if tag is None or tag.deleted:
            continue
        group = corp.tag_groups[tag.group_id]
        tags.append(
            {"group_name": group.group_name, "tag_name": tag.name, "type": 1, "tag_id": tag.id}
        )
    entry: dict[str, Any] = {
        "userid": follow.userid,
        "remark": follow.remark,
        "description": follow.description,
        "createtime": follow.createtime,
        "tags": tags,
        "remark_mobiles": list(follow.remark_mobiles),
        "add_way": follow.add_way,
        "oper_userid": follow.oper_userid or follow.userid,
    }
    if follow.state is not None:
        entry["state"] = follow.state
    return entry


ROUTES = [
    Route("externalcontact/get", "GET", get_external_contact),
    Route("externalcontact/list", "GET", list_external_contacts),
]
