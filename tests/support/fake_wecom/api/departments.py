"""Departments (通讯录): ``department/get`` and ``department/list``, with their leaders.

Seed them with :meth:`~tests.support.fake_wecom.corp.FakeCorp.add_department`; an unknown id
answers 60123 (invalid party id), as the platform does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route, required_query

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp

INVALID_PARTY = 60123


def get_department(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    raw = required_query(request, "id", 40058)
    try:
        department = corp.departments[int(raw)]
    except (KeyError, ValueError):
        raise ApiFailure(INVALID_PARTY) from None
    return {"department": department.to_api()}


def list_departments(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    raw = request.query.get("id")
    if raw:
        try:
            top = int(raw)
        except ValueError:
            raise ApiFailure(INVALID_PARTY) from None
        if top not in corp.departments:
            raise ApiFailure(INVALID_PARTY)
        wanted = {top}
        while True:
            more = {d.id for d in corp.departments.values() if d.parentid in wanted} - wanted
            if not more:
                break
            wanted |= more
    else:
        wanted = set(corp.departments)
    return {"department": [corp.departments[i].to_api() for i in sorted(wanted)]}


ROUTES = [
    Route("department/get", "GET", get_department),
    Route("department/list", "GET", list_departments),
]
