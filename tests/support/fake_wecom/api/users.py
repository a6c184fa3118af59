"""Staff directory (通讯录): ``user/get``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route, required_query

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp


def get_user(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    userid = required_query(request, "userid", 41009)
    staff = corp.staff.get(userid)
    if staff is None:
        raise ApiFailure(60111)
    return staff.to_api()


ROUTES = [Route("user/get", "GET", get_user)]
