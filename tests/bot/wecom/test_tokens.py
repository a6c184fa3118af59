"""The access token: fetched once, shared through the database, refreshed early, replaced once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.wecom import TransientWecomError, WecomClient
from store.models import AccessToken
from tests.bot.wecom.conftest import ClientFactory
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom


@pytest.fixture(autouse=True)
def staff(fake_wecom: FakeWecom) -> None:
    fake_wecom.add_staff("zhangsan", "张三")


async def stored_token(db: Database) -> AccessToken | None:
    async with db.sessions() as session:
        return await session.scalar(
            select(AccessToken).where(AccessToken.credential == "wecom:test")
        )


def tokens_sent(fake: FakeWecom, path: str = "user/get") -> list[str]:
    return [call.query["access_token"] for call in fake.calls_to(path)]


async def test_token_fetched_once_and_reused(
    wecom_client: WecomClient, fake_wecom: FakeWecom, db: Database, clock: ManualClock
) -> None:
    await wecom_client.get_user("zhangsan")
    await wecom_client.get_user("zhangsan")

    [gettoken] = fake_wecom.calls_to("gettoken")
    assert gettoken.query == {"corpid": fake_wecom.corp_id, "corpsecret": fake_wecom.secret}
    first, second = tokens_sent(fake_wecom)
    assert first == second
    row = await stored_token(db)
    assert row is not None
    assert row.token == first
    assert row.fetched_at == clock.now()
    assert row.expires_at == clock.now() + timedelta(seconds=7200)


async def test_concurrent_calls_share_one_gettoken(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    await asyncio.gather(*(wecom_client.get_user("zhangsan") for _ in range(10)))

    assert len(fake_wecom.calls_to("gettoken")) == 1
    assert len(set(tokens_sent(fake_wecom))) == 1


async def test_second_client_takes_the_token_from_the_database(
    make_client: ClientFactory, fake_wecom: FakeWecom
) -> None:
    await make_client().get_user("zhangsan")
    await make_client().get_user("zhangsan")

    assert len(fake_wecom.calls_to("gettoken")) == 1
    first, second = tokens_sent(fake_wecom)
    assert first == second


async def test_other_credential_does_not_share_the_token(
    make_client: ClientFactory, fake_wecom: FakeWecom, db: Database
) -> None:
    fake_wecom.add_app("other-secret")
    await make_client().get_user("zhangsan")
    await make_client(credential="wecom:other", secret="other-secret").get_user("zhangsan")

    assert [c.query["corpsecret"] for c in fake_wecom.calls_to("gettoken")] == [
        fake_wecom.secret,
        "other-secret",
    ]


async def test_expired_token_in_the_database_is_not_used(
    make_client: ClientFactory, fake_wecom: FakeWecom, db: Database, clock: ManualClock
) -> None:
    async with db.sessions.begin() as session:
        session.add(
            AccessToken(
                credential="wecom:test",
                token="stale",
                expires_at=clock.now() - timedelta(seconds=1),
                fetched_at=clock.now() - timedelta(hours=2),
            )
        )

    await make_client().get_user("zhangsan")

    assert len(fake_wecom.calls_to("gettoken")) == 1
    assert tokens_sent(fake_wecom) != ["stale"]
    row = await stored_token(db)
    assert row is not None
    assert row.token == tokens_sent(fake_wecom)[0]


async def test_token_refreshed_five_minutes_before_expiry_and_not_on_every_call(
    wecom_client: WecomClient, fake_wecom: FakeWecom, clock: ManualClock
) -> None:
    await wecom_client.get_user("zhangsan")
    clock.advance(7200 - 301)
    await wecom_client.get_user("zhangsan")
    assert len(fake_wecom.calls_to("gettoken")) == 1

    clock.advance(2)  # now inside the five minutes: refresh
    await wecom_client.get_user("zhangsan")
    await wecom_client.get_user("zhangsan")
    # The platform gives the same token while it is valid: used as is, not refetched per call.
    assert len(fake_wecom.calls_to("gettoken")) == 2
    assert len(set(tokens_sent(fake_wecom))) == 1

    clock.advance(300)  # the old token is gone: a new one
    await wecom_client.get_user("zhangsan")
    assert len(fake_wecom.calls_to("gettoken")) == 3
    assert tokens_sent(fake_wecom)[-1] != tokens_sent(fake_wecom)[0]


@pytest.mark.parametrize("errcode", [40014, 42001])
async def test_refused_token_is_replaced_once_and_the_call_succeeds(
    wecom_client: WecomClient, fake_wecom: FakeWecom, errcode: int
) -> None:
    fake_wecom.fail_next("user/get", errcode)

    user = await wecom_client.get_user("zhangsan")

    assert user["userid"] == "zhangsan"
    assert [(c.path, c.errcode) for c in fake_wecom.calls] == [
        ("gettoken", 0),
        ("user/get", errcode),
        ("gettoken", 0),
        ("user/get", 0),
    ]


async def test_expired_tokens_are_replaced_with_a_new_one(
    wecom_client: WecomClient, fake_wecom: FakeWecom, db: Database
) -> None:
    await wecom_client.get_user("zhangsan")
    fake_wecom.expire_all_tokens()

    await wecom_client.get_user("zhangsan")

    old, refused, new = tokens_sent(fake_wecom)
    assert refused == old
    assert new != old
    assert [c.errcode for c in fake_wecom.calls_to("user/get")] == [0, 42001, 0]
    row = await stored_token(db)
    assert row is not None
    assert row.token == new


async def test_second_consecutive_token_error_surfaces_without_a_loop(
    wecom_client: WecomClient, fake_wecom: FakeWecom
) -> None:
    fake_wecom.fail_next("user/get", 42001, times=3)

    with pytest.raises(TransientWecomError) as caught:
        await wecom_client.get_user("zhangsan")

    assert caught.value.errcode == 42001
    assert len(fake_wecom.calls_to("gettoken")) == 2
    assert len(fake_wecom.calls_to("user/get")) == 2


async def test_refused_token_already_replaced_by_another_process_is_kept(
    make_client: ClientFactory, fake_wecom: FakeWecom, db: Database
) -> None:
    first, second = make_client(), make_client()
    await first.get_user("zhangsan")
    await second.get_user("zhangsan")
    fake_wecom.revoke_all_tokens()
    await second.get_user("zhangsan")  # replaces the token in the database
    replacement = tokens_sent(fake_wecom)[-1]

    await first.get_user("zhangsan")  # still holds the revoked one in memory

    assert len(fake_wecom.calls_to("gettoken")) == 2
    assert tokens_sent(fake_wecom)[-1] == replacement
    row = await stored_token(db)
    assert row is not None
    assert row.token == replacement
