"""WeChat Official Account (公众号) callbacks: ``/mp/callback[/{account}]``.

URL check: GET ``signature`` = SHA1(sorted token, timestamp, nonce), answer ``echostr`` as is.
Messages: in plain mode the body is the message itself, covered only by ``signature``; it is
checked to be well-formed (safe XML or a JSON object) and stored as received. In safe mode
(``encrypt_type=aes``) ``msg_signature`` covers the ``Encrypt`` value of an XML or JSON envelope
and the plaintext is stored. The answer is ``success``.
"""

from __future__ import annotations

from aiohttp import web

from bot.callback.crypto import (
    MalformedCallback,
    json_envelope_encrypt,
    parse_json_object,
    parse_safe_xml,
    refuse_dtd,
    xml_envelope_encrypt,
)
from bot.callback.request import plain_text, query_values, read_body, store
from bot.callback.targets import Target, Targets


def body_format(body: bytes) -> str:
    """``xml`` or ``json``, from the first character: some accounts push JSON instead of XML."""
    start = body.lstrip()[:1]
    if start == b"<":
        return "xml"
    if start == b"{":
        return "json"
    raise MalformedCallback("body is neither XML nor a JSON object")


class MpEndpoint:
    def __init__(self, targets: Targets, max_body_bytes: int) -> None:
        self.targets = targets
        self.max_body_bytes = max_body_bytes

    def _plain_target(self, request: web.Request) -> Target:
        signature, timestamp, nonce = query_values(request, "signature", "timestamp", "nonce")
        return self.targets.pick(request, signature, timestamp, nonce)

    async def verify(self, request: web.Request) -> web.StreamResponse:
        self._plain_target(request)
        (echostr,) = query_values(request, "echostr")
        return plain_text(echostr)

    async def receive(self, request: web.Request) -> web.StreamResponse:
        encrypt_type = request.query.get("encrypt_type", "raw")
        if encrypt_type not in ("raw", "aes"):
            raise MalformedCallback(f"unknown encrypt_type {encrypt_type!r}; expected raw or aes")
        body = await read_body(request, self.max_body_bytes)
        kind = body_format(body)
        if encrypt_type == "aes":
            target, plaintext = self._decrypt(request, body, kind)
        else:
            target, plaintext = self._plain(request, body, kind)
        await store(request, target, plaintext, kind)
        return plain_text("success")

    def _decrypt(self, request: web.Request, body: bytes, kind: str) -> tuple[Target, str]:
        signature, timestamp, nonce = query_values(request, "msg_signature", "timestamp", "nonce")
        if kind == "xml":
            encrypt = xml_envelope_encrypt(body)
        else:
            encrypt = json_envelope_encrypt(body, "Encrypt")
        target = self.targets.pick(request, signature, timestamp, nonce, encrypt)
        plaintext = target.require_cipher().decrypt_verified(encrypt)
        return target, refuse_dtd(plaintext) if kind == "xml" else plaintext

    def _plain(self, request: web.Request, body: bytes, kind: str) -> tuple[Target, str]:
        target = self._plain_target(request)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedCallback("body is not UTF-8") from None
        if kind == "xml":
            parse_safe_xml(body)
        else:
            parse_json_object(text)
        return target, text
