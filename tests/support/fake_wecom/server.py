"""A fake WeCom API server: real HTTP on 127.0.0.1, the platform's paths, shapes and errcodes.

Tests and the ``scrm demo`` command talk to it through the real client. Every request is
checked the way the platform checks it, in the platform's order: the access token first
(41001 missing, 40014 unknown or revoked, 42001 expired), then the HTTP method, the JSON body
and the API's own parameters. The platform does not document its answer to a wrong HTTP
method; the fake answers 40063 (some parameters are empty), which is what a GET to a POST API
gets there. Unknown paths get HTTP 404.

Seed it with the plain methods of :class:`~tests.support.fake_wecom.corp.FakeCorp`, switch
faults on with :meth:`FakeWecom.fail_next` and friends, and read :attr:`FakeWecom.calls`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from aiohttp import web

from sop.clock import Clock
from tests.support.fake_wecom.api import ROUTES, ApiFailure, ApiRequest, Route
from tests.support.fake_wecom.api.base import ERRMSGS
from tests.support.fake_wecom.corp import FakeCorp
from tests.support.fake_wecom.faults import Call, Fault, FaultPlan


class FakeWecom(FakeCorp):
    def __init__(
        self,
        *,
        corp_id: str = "ww0000fakecorp0001",
        secret: str = "fake-secret",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(corp_id=corp_id, secret=secret, clock=clock)
        self.calls: list[Call] = []
        self.faults = FaultPlan()
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.base_url = ""

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1, on a free port; ``base_url`` tells where."""
        app = web.Application()
        app.router.add_route("*", "/cgi-bin/{path:.+}", self._handle)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- faults ------------------------------------------------------------------------------

    def fail_next(
        self, api_path: str, errcode: int, times: int = 1, errmsg: str | None = None
    ) -> None:
        """The next ``times`` calls of ``api_path`` answer ``errcode`` (-1, 45009, 40014, ...)."""
        self.faults.add(api_path, Fault("errcode", errcode, errmsg), times)

    def http_status_next(self, api_path: str, status: int, times: int = 1) -> None:
        """The next ``times`` calls of ``api_path`` answer HTTP ``status`` with no JSON."""
        self.faults.add(api_path, Fault("status", status), times)

    def drop_next(self, api_path: str, times: int = 1) -> None:
        """The next ``times`` calls of ``api_path`` get their connection closed, no answer.

        aiohttp's client resends an idempotent request (GET) once on such a drop: make
        ``times`` 2 to see a GET fail.
        """
        self.faults.add(api_path, Fault("drop"), times)

    def lose_answer_next(self, api_path: str, times: int = 1) -> None:
        """The next ``times`` calls of ``api_path`` are carried out, then their connection is
        closed before the answer: what a caller sees when the platform acted and the answer
        was lost on the way back (the platform's outcome is in the fake's state)."""
        self.faults.add(api_path, Fault("lost"), times)

    def delay(self, api_path: str, seconds: float) -> None:
        """Every call of ``api_path`` waits ``seconds`` before it is handled; 0 switches off."""
        self.faults.delay(api_path, seconds)

    def clear_faults(self) -> None:
        self.faults.clear()

    # --- the call record ---------------------------------------------------------------------

    def calls_to(self, api_path: str) -> list[Call]:
        path = api_path.strip("/")
        return [c for c in self.calls if c.path == path]

    # --- request pipeline --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"].strip("/")
        raw = await request.read()
        body, body_ok = _parse_body(raw)
        call = Call(request.method, path, dict(request.query), body, self.now())
        self.calls.append(call)

        seconds = self.faults.delay_of(path)
        if seconds:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        fault = self.faults.take(path)
        if fault is not None and fault.kind == "lost":
            route = ROUTES.get(path)
            if route is not None:
                with suppress(ApiFailure):
                    self._serve(route, request, body, body_ok)
            fault = Fault("drop")
        if fault is not None and fault.kind == "drop":
            call.dropped = True
            assert request.transport is not None
            request.transport.close()
            await asyncio.Event().wait()  # cancelled when the connection is lost
        if fault is not None and fault.kind == "status":
            call.status = fault.value
            return web.Response(status=fault.value, text=f"fake HTTP {fault.value}")
        if fault is not None:
            return self._error(call, fault.value, fault.errmsg)

        route = ROUTES.get(path)
        if route is None:
            call.status = 404
            return web.Response(status=404, text=f"no API /cgi-bin/{path}")
        try:
            payload = self._serve(route, request, body, body_ok)
        except ApiFailure as failure:
            return self._error(call, failure.errcode, None, failure.detail)
        call.errcode, call.status = 0, 200
        return web.json_response({"errcode": 0, "errmsg": "ok", **payload})

    def _serve(
        self, route: Route, request: web.Request, body: Any, body_ok: bool
    ) -> dict[str, Any]:
        secret = None
        if route.needs_token:
            secret = self._check_token(request.query.get("access_token", ""))
        if request.method != route.method:
            raise ApiFailure(40063, f"{route.path} takes {route.method}, not {request.method}")
        if route.method == "POST":
            body = {} if body is None else body
            if not body_ok or not isinstance(body, dict):
                raise ApiFailure(47001, "Warning: wrong json format.")
        self.settle_transfers()  # waiting handovers whose time came, before anyone looks
        api_request = ApiRequest(
            request.method,
            route.path,
            dict(request.query),
            body if isinstance(body, dict) else None,
            secret,
        )
        return route.handler(self, api_request)

    def _check_token(self, value: str) -> str:
        if not value:
            raise ApiFailure(41001)
        token = self.tokens.get(value)
        if token is None or token.revoked:
            raise ApiFailure(40014)
        if token.expires_at <= self.now():
            raise ApiFailure(42001)
        return token.secret

    def _error(
        self, call: Call, errcode: int, errmsg: str | None, detail: str = ""
    ) -> web.Response:
        call.errcode, call.status = errcode, 200
        text = errmsg or ERRMSGS.get(errcode, "fake error")
        if detail:
            text = f"{text}: {detail}"
        hint = f"{int(self.now().timestamp())}_{secrets.token_hex(16)}"
        more = f"https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        full = f"{text}, hint: [{hint}], from ip: 127.0.0.1, more info at {more}"
        return web.json_response({"errcode": errcode, "errmsg": full})


def _parse_body(raw: bytes) -> tuple[Any, bool]:
    if not raw:
        return None, True
    try:
        return json.loads(raw.decode("utf-8")), True
    except ValueError:
        return raw.decode("utf-8", errors="replace"), False


@asynccontextmanager
async def running_fake_wecom(
    *, corp_id: str = "ww0000fakecorp0001", secret: str = "fake-secret", clock: Clock | None = None
) -> AsyncIterator[FakeWecom]:
    """``async with running_fake_wecom() as fake:`` a started fake, closed on the way out."""
    fake = FakeWecom(corp_id=corp_id, secret=secret, clock=clock)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
