"""Corp customer tags (企业客户标签): ``get_corp_tag_list``, ``add_corp_tag``, ``mark_tag``.

``get_corp_tag_list``: neither filter returns every tag; ``group_id`` wins over ``tag_id`` when
both are given, as the platform documents. Deleted tags and groups are left out.

``add_corp_tag`` adds tags to the group ``group_id`` (40068 when unknown), or to the group
named ``group_name``, created when no live group has that name; 40063 without tags or a group,
40072 for a name that is empty or over 30 characters, 40071 for a name the group already
holds (or one repeated in the request). ``mark_tag`` puts tags on and takes them off a
customer as a staff member sees them: 40063 when both lists are empty, 41009/41035 without
userid/external_userid, 60111 unknown staff, 40096 unknown customer, 84061 when the staff
member does not have the customer, 40068 for an unknown or deleted tag id. Both change the
corp's state, so ``get_corp_tag_list`` and ``externalcontact/get`` show the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route, required_body

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp
    from tests.support.fake_wecom.models import TagGroup


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


NAME_LIMIT = 30


def add_corp_tag(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    tags = body.get("tag")
    if not isinstance(tags, list) or not tags:
        raise ApiFailure(40063, "tag is required: a list of {name, order}")
    names = [t.get("name") if isinstance(t, dict) else None for t in tags]
    for name in names:
        if not isinstance(name, str) or not 0 < len(name) <= NAME_LIMIT:
            raise ApiFailure(40072, f"tag name {name!r} must be 1 to {NAME_LIMIT} characters")
    group = _target_group(corp, body)
    existing = {corp.tags[t].name for t in group.tag_ids if not corp.tags[t].deleted}
    for index, name in enumerate(names):
        if name in existing or name in names[:index]:
            raise ApiFailure(40071, f"tag {name!r} already exists in group {group.group_name!r}")
    created = [
        corp.add_tag(group.group_id, str(name), order=int(tag.get("order", 0)))
        for name, tag in zip(names, tags, strict=True)
    ]
    return {
        "tag_group": {
            "group_id": group.group_id,
            "group_name": group.group_name,
            "create_time": group.create_time,
            "order": group.order,
            "tag": [t.to_api() for t in created],
        }
    }


def _target_group(corp: FakeCorp, body: dict[str, Any]) -> TagGroup:
    group_id = body.get("group_id")
    if group_id:
        group = corp.tag_groups.get(str(group_id))
        if group is None or group.deleted:
            raise ApiFailure(40068, f"no tag group {group_id!r}")
        return group
    group_name = body.get("group_name")
    if not group_name:
        raise ApiFailure(40063, "group_id or group_name is required")
    if not isinstance(group_name, str) or len(group_name) > NAME_LIMIT:
        raise ApiFailure(40072, f"group name must be at most {NAME_LIMIT} characters")
    for group in corp.tag_groups.values():
        if group.group_name == group_name and not group.deleted:
            return group
    return corp.add_tag_group(group_name, order=int(body.get("order", 0)))


def mark_tag(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    userid = required_body(request, "userid", 41009)
    external_userid = required_body(request, "external_userid", 41035)
    add, remove = _id_list(body, "add_tag"), _id_list(body, "remove_tag")
    if not add and not remove:
        raise ApiFailure(40063, "add_tag and remove_tag may not both be empty")
    if userid not in corp.staff:
        raise ApiFailure(60111)
    customer = corp.customers.get(str(external_userid))
    if customer is None:
        raise ApiFailure(40096)
    follow = customer.follows.get(str(userid))
    if follow is None:
        raise ApiFailure(84061)
    for tag_id in [*add, *remove]:
        tag = corp.tags.get(tag_id)
        if tag is None or tag.deleted:
            raise ApiFailure(40068, f"no tag {tag_id!r}")
    follow.tag_ids = [t for t in follow.tag_ids if t not in remove]
    follow.tag_ids += [t for t in dict.fromkeys(add) if t not in follow.tag_ids]
    return {}


ROUTES = [
    Route("externalcontact/get_corp_tag_list", "POST", get_corp_tag_list),
    Route("externalcontact/add_corp_tag", "POST", add_corp_tag),
    Route("externalcontact/mark_tag", "POST", mark_tag),
]
