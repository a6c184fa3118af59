"""WeCom app callbacks over real HTTP into a real inbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text

from bot.callback.lanes import lane_of
from bot.callback.samples import (
    SignedRequest,
    customer_added_xml,
    group_join_xml,
    sign_wecom,
    staff_text_xml,
    verify_wecom,
)
from bot.config import Config
from tests.bot.callback.conftest import CORP_ID, Ingest, wecom_app
from tests.bot.callback.test_crypto import (
    BILLION_LAUGHS,
    WECOM_ECHO,
    WECOM_ENCRYPT,
    WECOM_ENVELOPE,
    WECOM_PLAINTEXT,
    external_entity,
)


def added(external_user_id: str = "woAJ2GCAAAXtWyujaWJHDDGi0mAAAA") -> str:
    return customer_added_xml(
        corp_id=CORP_ID,
        user_id="zhangsan",
        external_user_id=external_user_id,
        state="teststate",
        welcome_code="WELCOMECODE",
        create_time=1700000000,
    )


def signed(config: Config, plaintext: str, app: str = "sales", **kw: bool) -> SignedRequest:
    return sign_wecom(
        wecom_app(config, app), CORP_ID, plaintext, timestamp=1700000000, nonce="n0nce", **kw
    )


async def test_published_doc_sample_over_http(ingest: Ingest) -> None:
    verify = await ingest.client.get(
        "/wecom/callback/sales",
        params={
            "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
            "timestamp": "1409659589",
            "nonce": "263014780",
            "echostr": WECOM_ECHO,
        },
    )
    assert verify.status == 200
    assert await verify.read() == b"1616140317555161061"
    assert verify.content_type == "text/plain"
    query = {
        "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
        "timestamp": "1409659813",
        "nonce": "1372623149",
    }
    response = await ingest.client.post("/wecom/callback", params=query, data=WECOM_ENVELOPE)
    assert response.status == 200
    assert await response.read() == b""
    [row] = await ingest.rows()
    assert (row.source, row.content_type, row.payload) == ("wecom:sales", "xml", WECOM_PLAINTEXT)


async def test_signed_callback_is_stored_once(ingest: Ingest, config: Config) -> None:
    request = signed(config, added())
    responses = await asyncio.gather(*(ingest.send(request) for _ in range(3)))
    assert [r.status for r in responses] == [200, 200, 200]
    retry = await ingest.send(signed(config, added()))  # a retry: same plaintext, new cipher
    assert retry.status == 200
    [row] = await ingest.rows()
    assert row.payload == added()
    assert row.source == "wecom:sales"
    assert row.state.value == "pending"
    assert row.lane == lane_of("xml", added())


async def test_distinct_events_of_the_same_second_are_both_kept(
    ingest: Ingest, config: Config
) -> None:
    for external in ("wm-one", "wm-two"):
        assert (await ingest.send(signed(config, added(external)))).status == 200
    assert len(await ingest.rows()) == 2


async def test_wrong_signature_403_and_nothing_stored(ingest: Ingest, config: Config) -> None:
    request = signed(config, added())
    query = request.query | {"msg_signature": "0" * 40}
    response = await ingest.client.post(request.path, params=query, data=request.body)
    assert response.status == 403
    assert "signature" in await response.text()
    unnamed = await ingest.client.post("/wecom/callback", params=query, data=request.body)
    assert unnamed.status == 403
    assert await ingest.rows() == []


async def test_callback_for_one_app_refused_at_another(ingest: Ingest, config: Config) -> None:
    request = signed(config, added(), app="sales")
    response = await ingest.client.post(
        "/wecom/callback/contacts", params=request.query, data=request.body
    )
    assert response.status == 403
    assert await ingest.rows() == []


async def test_garbage_400(ingest: Ingest, config: Config) -> None:
    request = signed(config, added())
    for body in (b"garbage", b"<xml><Encrypt>", b"<xml><ToUserName>x</ToUserName></xml>"):
        response = await ingest.client.post(request.path, params=request.query, data=body)
        assert response.status == 400, body
    missing = await ingest.client.post(request.path, data=request.body)
    assert missing.status == 400
    assert "msg_signature" in await missing.text()
    assert await ingest.rows() == []


async def test_undecryptable_but_signed_400(ingest: Ingest, config: Config) -> None:
    """Signed with the app's token but sealed for another corp: the receive id check fails."""
    request = sign_wecom(
        wecom_app(config, "sales"), "ww-another-corp", added(), timestamp=1, nonce="n"
    )
    response = await ingest.send(request)
    assert response.status == 400
    assert await ingest.rows() == []


async def test_body_over_limit_413(ingest: Ingest, config: Config) -> None:
    request = signed(config, added())
    big = b"<xml><Encrypt>" + b"A" * (65 * 1024) + b"</Encrypt></xml>"
    response = await ingest.client.post(request.path, params=request.query, data=big)
    assert response.status == 413

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(65):
            yield b"A" * 1024

    streamed = await ingest.client.post(request.path, params=request.query, data=chunked())
    assert streamed.status == 413
    assert await ingest.rows() == []


async def test_entities_refused_in_envelope_and_payload(
    ingest: Ingest, config: Config, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    request = signed(config, added())
    for body in (BILLION_LAUGHS, external_entity(secret)):
        response = await ingest.client.post(request.path, params=request.query, data=body)
        assert response.status == 400
        assert "TOP-SECRET" not in await response.text()
    for plaintext in (BILLION_LAUGHS, external_entity(secret)):
        response = await ingest.send(signed(config, plaintext))
        assert response.status == 400
        assert "DTD" in await response.text()
    assert await ingest.rows() == []


async def test_text_that_mentions_a_doctype_is_accepted(ingest: Ingest, config: Config) -> None:
    plaintext = staff_text_xml(
        corp_id=CORP_ID,
        user_id="lisi",
        agent_id=218,
        content="how do I write <!DOCTYPE html> ]]> here?",
        msg_id=1,
        create_time=1700000000,
    )
    assert (await ingest.send(signed(config, plaintext))).status == 200
    [row] = await ingest.rows()
    assert row.payload == plaintext


async def test_several_apps_side_by_side(ingest: Ingest, config: Config) -> None:
    join = group_join_xml(
        corp_id=CORP_ID,
        chat_id="wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
        member_ids=["wm1"],
        create_time=1700000001,
    )
    requests = [
        signed(config, added(), app="sales"),
        signed(config, join, app="contacts"),
        signed(config, added("wm-unnamed"), app="sales", named=False),
        signed(config, join.replace("wm1", "wm2"), app="contacts", named=False),
    ]
    for request in requests:
        assert (await ingest.send(request)).status == 200
    assert [r.source for r in await ingest.rows()] == [
        "wecom:sales",
        "wecom:contacts",
        "wecom:sales",
        "wecom:contacts",
    ]


async def test_unknown_app_404(ingest: Ingest, config: Config) -> None:
    request = signed(config, added())
    response = await ingest.client.post(
        "/wecom/callback/nosuch", params=request.query, data=request.body
    )
    assert response.status == 404
    assert "nosuch" in await response.text()


async def test_url_verification_named_and_unnamed(ingest: Ingest, config: Config) -> None:
    for app in ("sales", "contacts"):
        for named in (True, False):
            request = verify_wecom(
                wecom_app(config, app),
                CORP_ID,
                f"echo-{app}+/=",
                timestamp=1,
                nonce="x",
                named=named,
            )
            response = await ingest.send(request)
            assert response.status == 200
            assert await response.read() == f"echo-{app}+/=".encode()
    bad = verify_wecom(wecom_app(config, "sales"), CORP_ID, "e", timestamp=1, nonce="x")
    response = await ingest.client.get(bad.path, params=bad.query | {"nonce": "y"})
    assert response.status == 403


async def test_inbox_failure_500_then_retry_stored(ingest: Ingest, config: Config) -> None:
    request = signed(config, added())
    async with ingest.db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE inbox RENAME TO inbox_away"))
    try:
        assert (await ingest.send(request)).status == 500
    finally:
        async with ingest.db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE inbox_away RENAME TO inbox"))
    assert (await ingest.send(request)).status == 200
    assert len(await ingest.rows()) == 1


async def test_concurrent_callbacks_are_group_committed(ingest: Ingest, config: Config) -> None:
    requests = [signed(config, added(f"wm{i}")) for i in range(40)]
    responses = await asyncio.gather(*(ingest.send(r) for r in requests))
    assert {r.status for r in responses} == {200}
    assert len(await ingest.rows()) == 40
    assert ingest.writer.stats.batches < 40


def test_envelope_and_encrypt_constants_agree() -> None:
    assert WECOM_ENCRYPT.encode() in WECOM_ENVELOPE
