"""The Official Account client: tokens shared through the database, bounded token retry,
errors with the Official Account's meaning."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import select

from bot.wechat_mp import MpApiError, MpClient, MpCredentialsError
from sop.delivery import messages
from store.models import AccessToken
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_mp import FakeMp

SEND = "message/custom/send"


async def test_sends_with_one_token_shared_through_the_database(
    mp_client: MpClient, fake_mp: FakeMp, db: Database, clock: ManualClock
) -> None:
    fake_mp.receive("oAlice")

    await mp_client.send_custom_message("oAlice", messages.text("你好"))
    async with aiohttp.ClientSession() as http:
        other_process = MpClient(
            app_id=fake_mp.app_id,
            secret=fake_mp.secret,
            sessions=db.sessions,
            clock=clock,
            http=http,
            base_url=fake_mp.base_url,
        )
        await other_process.send_custom_message("oAlice", messages.text("再见"))

    assert len(fake_mp.calls_to("token")) == 1
    assert fake_mp.calls_to("token")[0].query["grant_type"] == "client_credential"
    [first, second] = fake_mp.delivered_to("oAlice")
    assert first.body == {"msgtype": "text", "text": {"content": "你好"}, "touser": "oAlice"}
    assert second.body["text"] == {"content": "再见"}
    async with db.sessions() as session:
        stored = (await session.scalars(select(AccessToken))).one()
    assert stored.credential == f"mp:{fake_mp.app_id}"


async def test_a_refused_token_is_replaced_once(mp_client: MpClient, fake_mp: FakeMp) -> None:
    fake_mp.receive("oAlice")
    await mp_client.send_custom_message("oAlice", messages.text("1"))
    fake_mp.expire_tokens()

    await mp_client.send_custom_message("oAlice", messages.text("2"))

    assert [c.errcode for c in fake_mp.calls_to(SEND)] == [0, 40001, 0]
    assert len(fake_mp.calls_to("token")) == 2
    assert len(fake_mp.delivered_to("oAlice")) == 2


async def test_a_token_refused_twice_is_not_retried_again(
    mp_client: MpClient, fake_mp: FakeMp
) -> None:
    fake_mp.receive("oAlice")
    fake_mp.fail_next(SEND, 42001, times=3)

    with pytest.raises(MpApiError) as caught:
        await mp_client.send_custom_message("oAlice", messages.text("1"))

    assert caught.value.errcode == 42001
    assert len(fake_mp.calls_to(SEND)) == 2
    assert fake_mp.deliveries == []


async def test_a_wrong_secret_names_the_fix(
    fake_mp: FakeMp, db: Database, clock: ManualClock
) -> None:
    async with aiohttp.ClientSession() as http:
        client = MpClient(
            app_id=fake_mp.app_id,
            secret="wrong",
            sessions=db.sessions,
            clock=clock,
            http=http,
            base_url=fake_mp.base_url,
        )
        with pytest.raises(MpCredentialsError) as caught:
            await client.send_custom_message("oAlice", messages.text("1"))

    assert caught.value.errcode == 40125
    assert "mp_accounts[].secret" in str(caught.value)
    assert fake_mp.calls_to(SEND) == []


async def test_outside_the_window_and_over_the_quota_are_the_platform_errcodes(
    mp_client: MpClient, fake_mp: FakeMp, clock: ManualClock
) -> None:
    fake_mp.follow("oBob")
    with pytest.raises(MpApiError) as outside:
        await mp_client.send_custom_message("oBob", messages.text("hi"))
    fake_mp.receive("oBob")
    for n in range(5):
        await mp_client.send_custom_message("oBob", messages.text(str(n)))
    with pytest.raises(MpApiError) as over:
        await mp_client.send_custom_message("oBob", messages.text("6"))

    assert (outside.value.errcode, over.value.errcode) == (45015, 45047)
    assert "48 hours" in str(outside.value)
    assert not outside.value.transient
    assert len(fake_mp.delivered_to("oBob")) == 5


async def test_server_errors_are_transient(mp_client: MpClient, fake_mp: FakeMp) -> None:
    fake_mp.receive("oAlice")
    fake_mp.http_status_next(SEND, 502)

    with pytest.raises(MpApiError) as caught:
        await mp_client.send_custom_message("oAlice", messages.text("1"))

    assert caught.value.transient and caught.value.status == 502
