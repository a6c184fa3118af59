"""The fake WeCom server checks requests as the platform does: raw HTTP, no client of ours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.clock import ManualClock
from tests.support.fake_wecom import FakeWecom


class Raw:
    """Plain HTTP to the fake, so the checks do not depend on the client under test."""

    def __init__(self, fake: FakeWecom, http: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.http = http

    async def send(
        self, method: str, path: str, *, params: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        url = f"{self.fake.base_url}/cgi-bin/{path}"
        async with self.http.request(method, url, params=params or {}, **kwargs) as response:
            assert response.status == 200
            payload: dict[str, Any] = await response.json()
            return payload

    async def token(self) -> str:
        answer = await self.send(
            "GET", "gettoken", params={"corpid": self.fake.corp_id, "corpsecret": self.fake.secret}
        )
        token: str = answer["access_token"]
        return token


@pytest.fixture
async def raw(fake_wecom: FakeWecom) -> AsyncIterator[Raw]:
    fake_wecom.add_staff("zhangsan")
    fake_wecom.add_customer("wmAlice", "Alice", follow=["zhangsan"])
    fake_wecom.add_group("wrGroup1", "群", owner="zhangsan")
    async with aiohttp.ClientSession() as http:
        yield Raw(fake_wecom, http)


async def test_gettoken_returns_the_same_token_while_valid(raw: Raw, clock: ManualClock) -> None:
    params = {"corpid": raw.fake.corp_id, "corpsecret": raw.fake.secret}
    first = await raw.send("GET", "gettoken", params=params)
    clock.advance(100)
    second = await raw.send("GET", "gettoken", params=params)
    clock.advance(7200)
    third = await raw.send("GET", "gettoken", params=params)

    assert (first["errcode"], first["expires_in"]) == (0, 7200)
    assert (second["access_token"], second["expires_in"]) == (first["access_token"], 7100)
    assert third["access_token"] != first["access_token"]


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"corpsecret": "fake-secret"}, 41002),
        ({"corpid": "ww0000fakecorp0001"}, 41004),
        ({"corpid": "wwOther", "corpsecret": "fake-secret"}, 40013),
        ({"corpid": "ww0000fakecorp0001", "corpsecret": "nope"}, 40001),
    ],
)
async def test_gettoken_checks_corp_and_secret(
    raw: Raw, params: dict[str, str], errcode: int
) -> None:
    answer = await raw.send("GET", "gettoken", params=params)

    assert answer["errcode"] == errcode
    assert "access_token" not in answer
    assert (
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        in (answer["errmsg"])
    )


async def test_access_token_is_checked_first(raw: Raw, clock: ManualClock) -> None:
    path, query = "externalcontact/get", {"external_userid": "wmAlice"}
    missing = await raw.send("GET", path, params=query)
    unknown = await raw.send("GET", path, params={**query, "access_token": "made-up"})
    token = await raw.token()
    valid = await raw.send("GET", path, params={**query, "access_token": token})
    clock.advance(7200)
    expired = await raw.send("GET", path, params={**query, "access_token": token})

    assert [a["errcode"] for a in (missing, unknown, valid, expired)] == [41001, 40014, 0, 42001]
    assert [c.errcode for c in raw.fake.calls_to(path)] == [41001, 40014, 0, 42001]


async def test_revoked_and_expired_tokens(raw: Raw) -> None:
    token = await raw.token()
    raw.fake.revoke_all_tokens()
    revoked = await raw.send("GET", "user/get", params={"access_token": token, "userid": "x"})
    token = await raw.token()
    raw.fake.expire_all_tokens()
    expired = await raw.send("GET", "user/get", params={"access_token": token, "userid": "x"})

    assert (revoked["errcode"], expired["errcode"]) == (40014, 42001)


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "errcode"),
    [
        ("GET", "externalcontact/get", {}, None, 41035),
        ("GET", "externalcontact/get", {"external_userid": "wmNobody"}, None, 84061),
        ("GET", "externalcontact/list", {}, None, 41009),
        ("GET", "externalcontact/list", {"userid": "nobody"}, None, 60111),
        ("GET", "user/get", {}, None, 41009),
        ("GET", "user/get", {"userid": "nobody"}, None, 60111),
        ("POST", "user/get", {"userid": "zhangsan"}, None, 40063),
        ("GET", "externalcontact/groupchat/get", {}, None, 40063),
        ("POST", "externalcontact/groupchat/get", {}, {}, 40063),
        ("POST", "externalcontact/groupchat/get", {}, {"chat_id": "wrNone"}, 40050),
        ("POST", "externalcontact/get_corp_tag_list", {}, {"tag_id": "et1"}, 40058),
    ],
)
async def test_parameters_are_checked(
    raw: Raw,
    *,
    method: str,
    path: str,
    params: dict[str, str],
    body: Any,
    errcode: int,
) -> None:
    token = await raw.token()

    answer = await raw.send(method, path, params={**params, "access_token": token}, json=body)

    assert answer["errcode"] == errcode, answer
    assert raw.fake.calls_to(path)[-1].errcode == errcode


async def test_body_that_is_not_json_is_refused(raw: Raw) -> None:
    token = await raw.token()

    answer = await raw.send(
        "POST", "externalcontact/groupchat/get", params={"access_token": token}, data=b"{chat"
    )

    assert answer["errcode"] == 47001
    assert raw.fake.calls_to("externalcontact/groupchat/get")[0].json == "{chat"


async def test_group_member_names_only_on_request(raw: Raw) -> None:
    token = await raw.token()
    raw.fake.add_group_member("wrGroup1", "wmAlice", invitor="zhangsan")
    query = {"access_token": token}

    path = "externalcontact/groupchat/get"
    plain = await raw.send("POST", path, params=query, json={"chat_id": "wrGroup1"})
    named = await raw.send(
        "POST", path, params=query, json={"chat_id": "wrGroup1", "need_name": 1}
    )

    assert all("name" not in m for m in plain["group_chat"]["member_list"])
    assert {m["name"] for m in named["group_chat"]["member_list"]} == {"zhangsan", "Alice"}


async def test_faults_are_consumed_in_order(raw: Raw) -> None:
    token = await raw.token()
    raw.fake.fail_next("user/get", 45009, times=2)
    query = {"access_token": token, "userid": "zhangsan"}

    answers = [await raw.send("GET", "user/get", params=query) for _ in range(3)]

    assert [a["errcode"] for a in answers] == [45009, 45009, 0]
    assert answers[0]["errmsg"].startswith("api freq out of limit, hint: [")


async def test_http_status_fault(raw: Raw) -> None:
    raw.fake.http_status_next("gettoken", 503)
    url = f"{raw.fake.base_url}/cgi-bin/gettoken"

    async with raw.http.get(url) as response:
        assert response.status == 503
    assert raw.fake.calls_to("gettoken")[0].status == 503
    assert raw.fake.calls_to("gettoken")[0].errcode is None


def test_seeding_refuses_what_the_platform_would_never_return(fake_wecom: FakeWecom) -> None:
    with pytest.raises(KeyError, match="add_staff"):
        fake_wecom.add_customer("wmX", "X", follow=["ghost"])
    fake_wecom.add_staff("zhangsan")
    fake_wecom.add_customer("wmX", "X", follow=["zhangsan"])
    with pytest.raises(KeyError, match="no tag"):
        fake_wecom.update_follow("wmX", "zhangsan", tag_ids=["etMissing"])
    with pytest.raises(TypeError, match="cannot change"):
        fake_wecom.update_customer("wmX", nickname="Y")
    with pytest.raises(KeyError, match="add_staff"):
        fake_wecom.add_group(name="g", owner="ghost")
