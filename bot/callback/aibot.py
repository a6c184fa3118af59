"""WeCom AI bot (智能机器人) callbacks: ``/wecom/aibot[/{bot}]``.

The same signature and cipher as WeCom apps with an empty receive id (DOC 101033), but JSON:
POST ``{"encrypt": "..."}`` whose plaintext is the JSON message (msgid, aibotid, chatid,
chattype, from.userid, response_url, ...). It is stored as received and answered with an empty
200; the bot's replies go out later through ``response_url``, never on the answer path.
"""

from __future__ import annotations

from aiohttp import web

from bot.callback.crypto import json_envelope_encrypt
from bot.callback.request import query_values, read_body, store, verify_encrypted_url
from bot.callback.targets import Targets


class AibotEndpoint:
    def __init__(self, targets: Targets, max_body_bytes: int) -> None:
        self.targets = targets
        self.max_body_bytes = max_body_bytes

    async def verify(self, request: web.Request) -> web.StreamResponse:
        return await verify_encrypted_url(request, self.targets)

    async def receive(self, request: web.Request) -> web.StreamResponse:
        signature, timestamp, nonce = query_values(request, "msg_signature", "timestamp", "nonce")
        encrypt = json_envelope_encrypt(await read_body(request, self.max_body_bytes), "encrypt")
        target = self.targets.pick(request, signature, timestamp, nonce, encrypt)
        plaintext = target.require_cipher().decrypt_verified(encrypt)
        await store(request, target, plaintext, "json")
        return web.Response()
