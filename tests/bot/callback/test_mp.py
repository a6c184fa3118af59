"""Official Account callbacks: plain and safe mode, XML and JSON bodies."""

from __future__ import annotations

import json

import pytest

from bot.callback.samples import mp_text_json, mp_text_xml, sign_mp, verify_mp
from bot.config import Config
from tests.bot.callback.conftest import Ingest, mp_account
from tests.bot.callback.test_crypto import BILLION_LAUGHS

OPENID = "oia2TjjewbmiOUlr6X-1crbLOvLw"


def text_xml(msg_id: int = 1) -> str:
    return mp_text_xml(
        account_id="gh_7f083739789a",
        openid=OPENID,
        content="你好",
        msg_id=msg_id,
        create_time=1700000000,
    )


def text_json(msg_id: int = 2) -> str:
    return mp_text_json(
        account_id="gh_7f083739789a",
        openid=OPENID,
        content="hi",
        msg_id=msg_id,
        create_time=1700000000,
    )


@pytest.mark.parametrize(
    ("account", "safe"), [("plain", False), ("brand", False), ("brand", True)]
)
async def test_xml_and_json_are_stored(
    ingest: Ingest, config: Config, account: str, safe: bool
) -> None:
    for plaintext in (text_xml(), text_json()):
        request = sign_mp(
            mp_account(config, account),
            plaintext,
            timestamp=1700000000,
            nonce="n",
            openid=OPENID,
            safe=safe,
        )
        assert ("encrypt_type" in request.query) is safe
        for _ in range(2):
            response = await ingest.send(request)
            assert response.status == 200
            assert await response.text() == "success"
    rows = await ingest.rows()
    assert [(r.source, r.content_type, r.payload) for r in rows] == [
        (f"mp:{account}", "xml", text_xml()),
        (f"mp:{account}", "json", text_json()),
    ]
    assert json.loads(rows[1].payload)["MsgId"] == 2


async def test_unnamed_path_finds_the_account(ingest: Ingest, config: Config) -> None:
    for name, safe in (("plain", False), ("brand", True)):
        request = sign_mp(
            mp_account(config, name),
            text_xml(),
            timestamp=1,
            nonce="n",
            openid=OPENID,
            safe=safe,
            named=False,
        )
        assert (await ingest.send(request)).status == 200
    assert [r.source for r in await ingest.rows()] == ["mp:plain", "mp:brand"]


async def test_url_verification_returns_echostr_as_is(ingest: Ingest, config: Config) -> None:
    for name in ("plain", "brand"):
        for named in (True, False):
            request = verify_mp(
                mp_account(config, name), "6312345+x", timestamp=1, nonce="n", named=named
            )
            response = await ingest.send(request)
            assert response.status == 200
            assert await response.read() == b"6312345+x"


async def test_wechatpy_plain_signature_sample_over_http(ingest: Ingest) -> None:
    query = {
        "signature": "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff",
        "timestamp": "1410685589",
        "nonce": "test",
        "echostr": "hello",
    }
    response = await ingest.client.get("/mp/callback/plain", params=query)
    assert await response.read() == b"hello"
    query["signature"] = "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"
    assert (await ingest.client.get("/mp/callback/plain", params=query)).status == 403


async def test_refusals(ingest: Ingest, config: Config) -> None:
    brand, plain = mp_account(config, "brand"), mp_account(config, "plain")
    safe = sign_mp(brand, text_xml(), timestamp=1, nonce="n", openid=OPENID, safe=True)
    forged = safe.query | {"msg_signature": "0" * 40}
    assert (await ingest.client.post(safe.path, params=forged, data=safe.body)).status == 403
    raw = sign_mp(plain, text_xml(), timestamp=1, nonce="n", openid=OPENID)
    forged = raw.query | {"signature": "0" * 40}
    assert (await ingest.client.post(raw.path, params=forged, data=raw.body)).status == 403
    # Signed for another account: refused before anything else is said about "plain".
    response = await ingest.client.post(
        "/mp/callback/plain",
        params=safe.query | {"signature": raw.query["signature"]},
        data=safe.body,
    )
    assert response.status == 403
    for body in (b"garbage", b"<xml>", b"{]", b"[1, 2]", BILLION_LAUGHS.encode()):
        response = await ingest.client.post(raw.path, params=raw.query, data=body)
        assert response.status == 400, body
    odd = raw.query | {"encrypt_type": "rot13"}
    assert (await ingest.client.post(raw.path, params=odd, data=raw.body)).status == 400
    assert await ingest.rows() == []


async def test_safe_mode_for_an_account_without_key_is_400(ingest: Ingest, config: Config) -> None:
    brand = mp_account(config, "brand")
    plain_with_brand_key = brand.model_copy(update={"name": "plain", "token": "test"})
    request = sign_mp(
        plain_with_brand_key, text_xml(), timestamp=1, nonce="n", openid=OPENID, safe=True
    )
    response = await ingest.send(request)
    assert response.status == 400
    assert "encoding_aes_key" in await response.text()
    assert await ingest.rows() == []
