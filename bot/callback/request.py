"""What every callback endpoint does alike: bounded body, query parameters, store, refuse.

The answer path is verify -> decrypt -> inbox -> answer; these helpers keep each endpoint module
to exactly that sequence, and turn every refusal into a short text answer with the status the
platform needs (403 and 400 are final; 500 makes it retry) and one log line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.callback.crypto import CallbackError, MalformedCallback, dedupe_key
from bot.callback.inbox_writer import InboxWriteError, InboxWriter
from bot.callback.lanes import lane_of, priority_of
from bot.callback.targets import Target, Targets

log = logging.getLogger("bot.callback")

#: The inbox writer the callback endpoints store into.
INBOX_WRITER = web.AppKey("inbox_writer", InboxWriter)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BodyTooLarge(CallbackError):
    status = 413


class InboxUnavailable(CallbackError):
    """The inbox could not store the callback: 500, so the platform sends it again."""

    status = 500


def guarded(handler: Handler) -> Handler:
    """Answer a CallbackError with its status and a short reason, and log it."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except CallbackError as exc:
            log.warning(
                "callback %s %s refused with %d: %s", request.method, request.path, exc.status, exc
            )
            return web.Response(status=exc.status, text=f"{exc}\n")

    return wrapper


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes before reading it all."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"body exceeds the {limit}-byte limit")
    return bytes(body)


def query_values(request: web.Request, *names: str) -> list[str]:
    """The named query parameters (URL-decoded by aiohttp); 400 naming the first missing one."""
    query = request.query
    values = []
    for name in names:
        value = query.get(name)
        if not value:
            raise MalformedCallback(f"query parameter {name!r} is missing")
        values.append(value)
    return values


def echostr_value(request: web.Request) -> str:
    """``echostr`` as signed: base64 has no spaces, so a '+' decoded to ' ' is put back."""
    (echostr,) = query_values(request, "echostr")
    return echostr.replace(" ", "+")


async def store(request: web.Request, target: Target, plaintext: str, content_type: str) -> bool:
    """Write the decrypted callback to the inbox; True if it was new (False: a retry)."""
    writer = request.app[INBOX_WRITER]
    try:
        return await writer.accept(
            target.source,
            dedupe_key(target.source, plaintext),
            content_type,
            plaintext,
            lane=lane_of(content_type, plaintext),
            priority=priority_of(content_type, plaintext),
        )
    except InboxWriteError as exc:
        raise InboxUnavailable(f"inbox unavailable, retry later ({exc})") from None


async def verify_encrypted_url(request: web.Request, targets: Targets) -> web.StreamResponse:
    """WeCom URL check (apps, AI bots): check ``msg_signature``, answer the decrypted echostr."""
    signature, timestamp, nonce = query_values(request, "msg_signature", "timestamp", "nonce")
    echostr = echostr_value(request)
    target = targets.pick(request, signature, timestamp, nonce, echostr)
    return plain_text(target.require_cipher().decrypt(signature, timestamp, nonce, echostr))


def plain_text(text: str) -> web.Response:
    """A text/plain answer of exactly ``text``: no quotes, no newline (URL verification)."""
    return web.Response(text=text, content_type="text/plain")
