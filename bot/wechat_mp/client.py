"""The async Official Account (公众号) API client: the only place that knows the MP HTTP API.

It reuses the WeCom package's wire layer and token cache: the same ``errcode``/``errmsg``
format, the same ``access_tokens`` table shared by every process, the same bounded retry
(a refused token is replaced and the call sent once more; nothing else is retried here).
The Official Account API lives at ``https://api.weixin.qq.com/cgi-bin/``; ``base_url`` points
elsewhere for tests and the demo.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.wechat_mp.errors import (
    CREDENTIAL_ERRCODES,
    TOKEN_ERRCODES,
    MpApiError,
    MpCredentialsError,
)
from bot.wecom.errors import WecomApiError
from bot.wecom.tokens import AccessTokenCache, FetchedToken
from bot.wecom.transport import Payload, request_json
from sop.clock import Clock

MP_API_BASE_URL = "https://api.weixin.qq.com"
CUSTOM_SEND = "message/custom/send"


def mp_credential(app_id: str) -> str:
    """The ``access_tokens`` key of an Official Account's token."""
    return f"mp:{app_id}"


class MpClient:
    """Calls the Official Account API as ``app_id``; the aiohttp session is the caller's."""

    def __init__(
        self,
        *,
        app_id: str,
        secret: str,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        http: aiohttp.ClientSession,
        base_url: str = MP_API_BASE_URL,
        timeout: float = 10.0,
    ) -> None:
        self._base_url = base_url.rstrip("/") + "/cgi-bin/"
        self.app_id = app_id
        self._secret = secret
        self._http = http
        self._timeout = timeout
        self.credential = mp_credential(app_id)
        self.tokens = AccessTokenCache(
            credential=self.credential, fetch=self._fetch_token, sessions=sessions, clock=clock
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Payload:
        """Call ``/cgi-bin/<path>`` with the access token; the payload of a successful answer.

        On 40001/40014/42001 the token is dropped, a new one fetched and the call sent once
        more. Every failure is an :class:`MpApiError`.
        """
        api = path.strip("/")
        return await self.tokens.call_with_token(
            lambda token: self._send(method, api, token, params, json),
            refused=lambda exc: isinstance(exc, MpApiError) and exc.errcode in TOKEN_ERRCODES,
        )

    async def send_custom_message(self, openid: str, message: dict[str, Any]) -> Payload:
        """``message/custom/send``: ``message`` is a body built by :mod:`sop.delivery.messages`
        (``msgtype`` and its content); the follower's ``touser`` is added here."""
        return await self.call("POST", CUSTOM_SEND, json={**message, "touser": openid})

    async def _send(
        self,
        method: str,
        api: str,
        token: str,
        params: dict[str, str] | None,
        json: Any,
    ) -> Payload:
        try:
            return await request_json(
                self._http,
                method,
                self._base_url + api,
                api=api,
                params={**(params or {}), "access_token": token},
                json=json,
                time_limit=self._timeout,
            )
        except WecomApiError as exc:
            raise MpApiError.from_wecom(exc) from exc

    async def _fetch_token(self) -> FetchedToken:
        try:
            payload = await request_json(
                self._http,
                "GET",
                self._base_url + "token",
                api="token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.app_id,
                    "secret": self._secret,
                },
                time_limit=self._timeout,
            )
        except WecomApiError as exc:
            if exc.errcode in CREDENTIAL_ERRCODES:
                raise MpCredentialsError(
                    "token", exc.errcode, exc.errmsg, credential=self.credential
                ) from exc
            raise MpApiError.from_wecom(exc) from exc
        token = payload.get("access_token")
        expires_in = payload.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise MpApiError(
                "token", None, f"no access_token/expires_in in the answer: {sorted(payload)}"
            )
        return FetchedToken(token, expires_in)
