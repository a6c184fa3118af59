"""One HTTP exchange with the WeCom API, turned into a payload or a typed error.

Every failure mode of the wire ends up as a :class:`~bot.wecom.errors.WecomApiError`, so the
layers above never see an aiohttp exception. Nothing here retries, with one exception
outside our control: aiohttp itself resends an idempotent request (GET) once when the server
drops a kept-alive connection.
"""

from __future__ import annotations

import functools
import json as jsonlib
import logging
from typing import Any

import aiohttp

from bot.wecom.errors import TransientWecomError, WecomApiError, error_for

log = logging.getLogger(__name__)

Payload = dict[str, Any]


async def request_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    api: str,
    params: dict[str, str],
    json: Any = None,
    time_limit: float,
) -> Payload:
    """Send one request and return the JSON payload of an ``errcode`` 0 answer.

    ``api`` names the call in errors and logs (``externalcontact/get``); the URL's query may
    hold the secret or the token, so it never appears in either.
    """
    try:
        async with http.request(
            method,
            url,
            params=params,
            json=json,
            timeout=_timeout(time_limit),
        ) as response:
            status = response.status
            body = await response.read()
    except TimeoutError as exc:
        raise TransientWecomError(
            api, None, f"no answer within {time_limit:g} s", maybe_applied=True
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        raise TransientWecomError(api, None, f"cannot connect: {exc}") from exc
    except aiohttp.ClientError as exc:
        # Sent, then the connection broke: the platform may have acted on it.
        raise TransientWecomError(
            api, None, f"connection lost: {type(exc).__name__}: {exc}", maybe_applied=True
        ) from exc
    return _decode(api, status, body)


@functools.cache
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    """One immutable timeout object per limit, rather than one per request."""
    return aiohttp.ClientTimeout(total=seconds)


def _decode(api: str, status: int, body: bytes) -> Payload:
    if status >= 500 or status == 429:
        raise TransientWecomError(
            api, None, f"HTTP {status}: {_excerpt(body)}", status=status, maybe_applied=True
        )
    if status != 200:
        raise WecomApiError(api, None, f"HTTP {status}: {_excerpt(body)}", status=status)
    try:
        payload = jsonlib.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise TransientWecomError(
            api, None, f"answer is not JSON: {_excerpt(body)}", status=status, maybe_applied=True
        ) from exc
    if not isinstance(payload, dict):
        raise WecomApiError(api, None, f"answer is not a JSON object: {_excerpt(body)}")
    errcode = payload.get("errcode", 0)
    if not isinstance(errcode, int):
        raise WecomApiError(api, None, f"errcode is not an integer: {errcode!r}")
    if errcode != 0:
        errmsg = str(payload.get("errmsg", ""))
        log.info("WeCom %s answered errcode %s: %s", api, errcode, errmsg)
        raise error_for(api, errcode, errmsg)
    return payload


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
