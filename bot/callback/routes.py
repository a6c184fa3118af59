"""Mount the callback endpoints on the server's aiohttp application."""

from __future__ import annotations

from aiohttp import web

from bot.callback.aibot import AibotEndpoint
from bot.callback.inbox_writer import InboxWriter
from bot.callback.mp import MpEndpoint
from bot.callback.request import INBOX_WRITER, guarded
from bot.callback.targets import aibot_targets, mp_targets, wecom_targets
from bot.callback.wecom import WecomEndpoint
from bot.config import Config


def add_callback_routes(app: web.Application, config: Config, writer: InboxWriter) -> None:
    """Add GET (URL check) and POST (callbacks) for WeCom apps, AI bots and Official Accounts.

    Each kind answers at its base path (target found by signature) and at ``base/{name}``.
    The caller owns the writer: start it before serving and stop it after (it flushes).
    """
    app[INBOX_WRITER] = writer
    limit = config.server.max_body_bytes
    wecom = WecomEndpoint(wecom_targets(config), limit)
    aibot = AibotEndpoint(aibot_targets(config), limit)
    mp = MpEndpoint(mp_targets(config), limit)
    mounts: list[tuple[str, str, WecomEndpoint | AibotEndpoint | MpEndpoint]] = [
        ("/wecom/callback", "app", wecom),
        ("/wecom/aibot", "bot", aibot),
        ("/mp/callback", "account", mp),
    ]
    for base, param, endpoint in mounts:
        for path in (base, f"{base}/{{{param}}}"):
            app.router.add_get(path, guarded(endpoint.verify), allow_head=False)
            app.router.add_post(path, guarded(endpoint.receive))
