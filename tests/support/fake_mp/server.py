"""A fake Official Account API: real HTTP on 127.0.0.1, the platform's paths, shapes, errcodes.

It answers ``GET /cgi-bin/token`` and ``POST /cgi-bin/message/custom/send`` the way
api.weixin.qq.com does, and enforces the customer-service rules per openid: a follower opens a
48-hour window with each message they send (a test declares it with :meth:`FakeMp.receive`),
and at most ``quota`` (5) messages may go out in that window; beyond it 45015 (outside the
window) or 45047 (quota used). An openid the account does not know answers 40003; one that
unfollowed, 43004. Switchable faults like the fake WeCom's: :meth:`fail_next` (errcodes),
:meth:`http_status_next`, :meth:`expire_tokens`. :attr:`deliveries` is what followers got.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from sop.clock import Clock, SystemClock
from tests.support.fake_wecom.faults import Call, Fault, FaultPlan

WINDOW = timedelta(hours=48)
QUOTA = 5
TOKEN_LIFETIME = timedelta(seconds=7200)
MSGTYPES = frozenset(
    {"text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle", "msgmenu",
     "wxcard", "miniprogrampage"}
)  # fmt: skip
ERRMSGS = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40014: "invalid access_token",
    40125: "invalid appsecret",
    41001: "access_token missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
}


@dataclass
class Follower:
    openid: str
    subscribed: bool = True
    last_message_at: datetime | None = None
    sent_in_window: int = 0


@dataclass
class MpDelivery:
    openid: str
    body: dict[str, Any]
    at: datetime

    @property
    def msgtype(self) -> str:
        return str(self.body.get("msgtype", ""))


@dataclass
class _Token:
    value: str
    expires_at: datetime
    revoked: bool = False


class _Refused(Exception):
    def __init__(self, errcode: int) -> None:
        self.errcode = errcode
        super().__init__(f"errcode {errcode}")


@dataclass
class FakeMp:
    app_id: str = "wx0000fakemp00001"
    secret: str = "fake-mp-secret"
    clock: Clock = field(default_factory=SystemClock)
    quota: int = QUOTA
    followers: dict[str, Follower] = field(default_factory=dict)
    deliveries: list[MpDelivery] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    faults: FaultPlan = field(default_factory=FaultPlan)
    base_url: str = ""
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    # --- seeding and faults ------------------------------------------------------------------

    def follow(self, openid: str) -> Follower:
        return self.followers.setdefault(openid, Follower(openid))

    def unfollow(self, openid: str) -> None:
        self.follow(openid).subscribed = False

    def receive(self, openid: str, at: datetime | None = None) -> None:
        """``openid`` sent the account a message: a new 48-hour window with a fresh quota."""
        follower = self.follow(openid)
        follower.last_message_at = at or self.clock.now()
        follower.sent_in_window = 0

    def delivered_to(self, openid: str) -> list[MpDelivery]:
        return [d for d in self.deliveries if d.openid == openid]

    def calls_to(self, api_path: str) -> list[Call]:
        return [c for c in self.calls if c.path == api_path.strip("/")]

    def fail_next(self, api_path: str, errcode: int, times: int = 1) -> None:
        self.faults.add(api_path, Fault("errcode", errcode), times)

    def http_status_next(self, api_path: str, status: int, times: int = 1) -> None:
        self.faults.add(api_path, Fault("status", status), times)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (40001, as the platform does)."""
        for token in self._tokens.values():
            token.revoked = True

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the API -----------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        call = self._record(request, "token", None)
        answer = self._fault(call)
        if answer is not None:
            return answer
        query = request.query
        if query.get("grant_type") != "client_credential":
            return self._error(call, 40002)
        if query.get("appid") != self.app_id:
            return self._error(call, 40013)
        if query.get("secret") != self.secret:
            return self._error(call, 40125)
        token = _Token(secrets.token_urlsafe(24), self.clock.now() + TOKEN_LIFETIME)
        self._tokens[token.value] = token
        call.errcode, call.status = 0, 200
        return web.json_response(
            {"access_token": token.value, "expires_in": int(TOKEN_LIFETIME.total_seconds())}
        )

    async def _custom_send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = None
        call = self._record(request, "message/custom/send", body)
        answer = self._fault(call)
        if answer is not None:
            return answer
        try:
            self._check_token(request.query.get("access_token", ""))
            self._deliver(body)
        except _Refused as refused:
            return self._error(call, refused.errcode)
        call.errcode, call.status = 0, 200
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def _check_token(self, value: str) -> None:
        if not value:
            raise _Refused(41001)
        token = self._tokens.get(value)
        if token is None or token.revoked:
            raise _Refused(40001)
        if token.expires_at <= self.clock.now():
            raise _Refused(42001)

    def _deliver(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _Refused(47001 if body is not None else 44002)
        msgtype = body.get("msgtype")
        if msgtype not in MSGTYPES or not isinstance(body.get(msgtype), dict):
            raise _Refused(40008)
        if msgtype == "text" and not body["text"].get("content"):
            raise _Refused(44004)
        follower = self.followers.get(str(body.get("touser", "")))
        if follower is None:
            raise _Refused(40003)
        if not follower.subscribed:
            raise _Refused(43004)
        now = self.clock.now()
        last = follower.last_message_at
        if last is None or now >= last + WINDOW:
            raise _Refused(45015)
        if follower.sent_in_window >= self.quota:
            raise _Refused(45047)
        follower.sent_in_window += 1
        self.deliveries.append(MpDelivery(follower.openid, body, now))

    # --- plumbing ----------------------------------------------------------------------------

    def _record(self, request: web.Request, path: str, body: Any) -> Call:
        call = Call(request.method, path, dict(request.query), body, self.clock.now())
        self.calls.append(call)
        return call

    def _fault(self, call: Call) -> web.Response | None:
        fault = self.faults.take(call.path)
        if fault is None:
            return None
        if fault.kind == "status":
            call.status = fault.value
            return web.Response(status=fault.value, text=f"fake HTTP {fault.value}")
        return self._error(call, fault.value)

    def _error(self, call: Call, errcode: int) -> web.Response:
        call.errcode, call.status = errcode, 200
        rid = secrets.token_hex(8)
        text = f"{ERRMSGS.get(errcode, 'fake error')} rid: {rid}"
        return web.json_response({"errcode": errcode, "errmsg": text})


@asynccontextmanager
async def running_fake_mp(*, clock: Clock | None = None) -> AsyncIterator[FakeMp]:
    """``async with running_fake_mp(clock=clock) as fake:`` started, closed on the way out."""
    fake = FakeMp(clock=clock or SystemClock())
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
