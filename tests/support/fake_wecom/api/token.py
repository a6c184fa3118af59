"""``gettoken``: an access token for a corp id and an app secret."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route, required_query

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp


def gettoken(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    corpid = required_query(request, "corpid", 41002)
    secret = required_query(request, "corpsecret", 41004)
    if corpid != corp.corp_id:
        raise ApiFailure(40013)
    if secret not in corp.secrets:
        raise ApiFailure(40001)
    token = corp.issue_token(secret)
    remaining = int((token.expires_at - corp.now()).total_seconds())
    return {"access_token": token.value, "expires_in": remaining}


ROUTES = [Route("gettoken", "GET", gettoken, needs_token=False)]
