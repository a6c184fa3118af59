"""AI bot callbacks: JSON envelope, empty receive id, stored as JSON."""

from __future__ import annotations

import asyncio
import json

from bot.callback.crypto import CallbackCipher
from bot.callback.samples import aibot_text_json, sign_aibot, verify_aibot
from bot.config import Config
from tests.bot.callback.conftest import Ingest, aibot


def mention(msg_id: str = "CAIQ16HMjQYY", chat_id: str | None = "wrkSFfCgAAxxxx") -> str:
    return aibot_text_json(
        msg_id=msg_id, aibot_id="AIBOTID", user_id="zhangsan", content="@bot 你好", chat_id=chat_id
    )


async def test_mention_is_stored_once(ingest: Ingest, config: Config) -> None:
    request = sign_aibot(aibot(config, "helper"), mention(), timestamp=1700000000, nonce="n1")
    responses = await asyncio.gather(*(ingest.send(request) for _ in range(3)))
    assert [r.status for r in responses] == [200, 200, 200]
    assert await responses[0].read() == b""
    [row] = await ingest.rows()
    assert (row.source, row.content_type) == ("aibot:helper", "json")
    message = json.loads(row.payload)
    assert message["chattype"] == "group"
    assert message["from"] == {"userid": "zhangsan"}
    assert message["text"]["content"] == "@bot 你好"


async def test_unnamed_path_finds_the_bot(ingest: Ingest, config: Config) -> None:
    request = sign_aibot(
        aibot(config, "helper"), mention(chat_id=None), timestamp=1, nonce="n", named=False
    )
    assert request.path == "/wecom/aibot"
    assert (await ingest.send(request)).status == 200
    [row] = await ingest.rows()
    assert json.loads(row.payload)["chattype"] == "single"


async def test_url_verification(ingest: Ingest, config: Config) -> None:
    for named in (True, False):
        request = verify_aibot(
            aibot(config, "helper"), "12345", timestamp=1, nonce="n", named=named
        )
        response = await ingest.send(request)
        assert response.status == 200
        assert await response.read() == b"12345"


async def test_receive_id_must_be_empty(ingest: Ingest, config: Config) -> None:
    """Sealed as for a WeCom app (corp id as receive id): not an AI bot payload."""
    bot = aibot(config, "helper")
    sealed = CallbackCipher.wecom(bot.token, bot.encoding_aes_key, "wwcorp").seal(
        mention(), timestamp="1", nonce="n"
    )
    response = await ingest.client.post(
        "/wecom/aibot/helper",
        params={"msg_signature": sealed.signature, "timestamp": "1", "nonce": "n"},
        json={"encrypt": sealed.encrypt},
    )
    assert response.status == 400
    assert await ingest.rows() == []


async def test_refusals(ingest: Ingest, config: Config) -> None:
    request = sign_aibot(aibot(config, "helper"), mention(), timestamp=1, nonce="n")
    bad_signature = request.query | {"msg_signature": "f" * 40}
    assert (
        await ingest.client.post(request.path, params=bad_signature, data=request.body)
    ).status == 403
    for body in (b"not json", b'{"Encrypt": "x"}', b"[]"):
        response = await ingest.client.post(request.path, params=request.query, data=body)
        assert response.status == 400
    unknown = await ingest.client.post(
        "/wecom/aibot/nobody", params=request.query, data=request.body
    )
    assert unknown.status == 404
    big = await ingest.client.post(
        request.path, params=request.query, data=b'{"encrypt": "' + b"A" * 70_000 + b'"}'
    )
    assert big.status == 413
    assert await ingest.rows() == []
