"""WeCom self-built app and customer-contact callbacks: ``/wecom/callback[/{app}]``.

GET is the URL check (decrypt ``echostr``, answer it alone); POST carries
``<xml><ToUserName/><Encrypt/><AgentID/></xml>``: verify, decrypt, store the plaintext XML in
the inbox, answer an empty 200. Parsing the event is the processor's job, after the answer.
"""

from __future__ import annotations

from aiohttp import web

from bot.callback.crypto import refuse_dtd, xml_envelope_encrypt
from bot.callback.request import query_values, read_body, store, verify_encrypted_url
from bot.callback.targets import Targets


class WecomEndpoint:
    def __init__(self, targets: Targets, max_body_bytes: int) -> None:
        self.targets = targets
        self.max_body_bytes = max_body_bytes

    async def verify(self, request: web.Request) -> web.StreamResponse:
        return await verify_encrypted_url(request, self.targets)

    async def receive(self, request: web.Request) -> web.StreamResponse:
        signature, timestamp, nonce = query_values(request, "msg_signature", "timestamp", "nonce")
        encrypt = xml_envelope_encrypt(await read_body(request, self.max_body_bytes))
        target = self.targets.pick(request, signature, timestamp, nonce, encrypt)
        plaintext = refuse_dtd(target.require_cipher().decrypt_verified(encrypt))
        await store(request, target, plaintext, "xml")
        return web.Response()
