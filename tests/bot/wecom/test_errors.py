"""Failures come back typed: transient ones to retry later, permanent ones with their errcode."""

from __future__ import annotations

import pytest

from bot.wecom import TransientWecomError, WecomApiError, WecomClient, WecomCredentialsError
from tests.bot.wecom.conftest import ClientFactory
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom, running_fake_wecom


@pytest.fixture(autouse=True)
def seed(fake_wecom: FakeWecom) -> None:
    fake_wecom.add_staff("zhangsan", "张三")
    fake_wecom.add_customer("wmCustomer1", "Alice", follow=["zhangsan"])
    fake_wecom.add_group("wrGroup1", "VIP", owner="zhangsan")


@pytest.mark.parametrize("errcode", [-1, 45009, 45033])
async def test_busy_and_rate_limits_are_transient_and_not_retried(
    wecom_client: WecomClient, fake_wecom: FakeWecom, errcode: int
) -> None:
    fake_wecom.fail_next("externalcontact/get", errcode)

    with pytest.raises(TransientWecomError) as caught:
        await wecom_client.get_external_contact("wmCustomer1")

    error = caught.value
    assert (error.api, error.errcode, error.maybe_applied) == (
        "externalcontact/get",
        errcode,
        False,
    )
    assert len(fake_wecom.calls_to("externalcontact/get")) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    wecom_client: WecomClient, fake_wecom: FakeWecom, status: int
) -> None:
    fake_wecom.http_status_next("externalcontact/groupchat/get", status)

    with pytest.raises(TransientWecomError) as caught:
        await wecom_client.get_group_chat("wrGroup1")

    assert caught.value.status == status
    assert caught.value.errcode is None
    assert f"HTTP {status}" in str(caught.value)


async def test_client_error_status_is_permanent(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    with pytest.raises(WecomApiError) as caught:
        await wecom_client.call("GET", "externalcontact/no_such_api")

    assert not caught.value.transient
    assert caught.value.status == 404


async def test_timeout_is_transient_and_maybe_applied(
    make_client: ClientFactory, fake_wecom: FakeWecom
) -> None:
    client = make_client(timeout=0.05)
    await client.get_user("zhangsan")  # the token first, without delay
    fake_wecom.delay("user/get", 30)

    with pytest.raises(TransientWecomError) as caught:
        await client.get_user("zhangsan")

    assert caught.value.maybe_applied
    assert "no answer within 0.05 s" in str(caught.value)


async def test_dropped_connection_is_transient_and_maybe_applied(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    fake_wecom.drop_next("externalcontact/groupchat/get")

    with pytest.raises(TransientWecomError) as caught:
        await wecom_client.get_group_chat("wrGroup1")

    assert caught.value.maybe_applied
    [call] = fake_wecom.calls_to("externalcontact/groupchat/get")
    assert call.dropped


async def test_dropped_get_is_resent_once_by_aiohttp_then_transient(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    fake_wecom.drop_next("user/get", times=2)

    with pytest.raises(TransientWecomError):
        await wecom_client.get_user("zhangsan")

    assert [c.dropped for c in fake_wecom.calls_to("user/get")] == [True, True]


async def test_unreachable_server_is_transient_and_not_applied(
    make_client: ClientFactory, db: Database
) -> None:
    async with running_fake_wecom() as gone:
        base_url = gone.base_url

    with pytest.raises(TransientWecomError) as caught:
        await make_client(base_url=base_url).get_user("zhangsan")

    assert caught.value.api == "gettoken"
    assert not caught.value.maybe_applied


async def test_unknown_customer_is_a_permanent_error_with_errcode_and_errmsg(
    wecom_client: WecomClient,
) -> None:
    with pytest.raises(WecomApiError) as caught:
        await wecom_client.get_external_contact("wmNobody")

    error = caught.value
    assert not isinstance(error, TransientWecomError)
    assert error.errcode == 84061
    assert error.errmsg.startswith("not external contact")
    assert "externalcontact/get" in str(error)
    assert "no customer relation" in str(error)


async def test_bad_secret_is_a_clear_credentials_error(
    make_client: ClientFactory, fake_wecom: FakeWecom, db: Database
) -> None:
    client = make_client(secret="s3cr3t-value", credential="wecom:customer-contact")

    with pytest.raises(WecomCredentialsError) as caught:
        await client.get_user("zhangsan")

    message = str(caught.value)
    assert caught.value.errcode == 40001
    assert "wecom:customer-contact" in message
    assert fake_wecom.corp_id in message
    assert "check the app's secret" in message
    assert "s3cr3t-value" not in message
    assert fake_wecom.calls_to("user/get") == []


async def test_bad_corp_id_is_a_credentials_error(
    make_client: ClientFactory, fake_wecom: FakeWecom
) -> None:
    with pytest.raises(WecomCredentialsError) as caught:
        await make_client(corp_id="wwWrongCorp").get_user("zhangsan")

    assert caught.value.errcode == 40013
    assert "wecom.corp_id" in str(caught.value)


async def test_gettoken_busy_is_transient(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    fake_wecom.fail_next("gettoken", -1)

    with pytest.raises(TransientWecomError) as caught:
        await wecom_client.get_user("zhangsan")

    assert caught.value.api == "gettoken"
    assert fake_wecom.calls_to("user/get") == []
