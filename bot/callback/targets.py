"""Configured callback targets (apps, AI bots, accounts) and how a request finds its own.

A URL may name its target (``/wecom/callback/sales``) or not (``/wecom/callback``); without a
name the target is the one whose token makes the signature match, so one URL can serve several
apps. Building the ciphers once here keeps key decoding off the answer path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from bot.callback.crypto import (
    CallbackCipher,
    CallbackError,
    MalformedCallback,
    SignatureError,
    signature_matches,
)
from bot.config import Config


class UnknownTarget(CallbackError):
    """The path names an app, bot or account that is not configured."""

    status = 404


@dataclass(frozen=True)
class Target:
    """One configured endpoint: its name, inbox source, token and cipher (None: plain only)."""

    name: str
    source: str
    token: str
    cipher: CallbackCipher | None

    def require_cipher(self) -> CallbackCipher:
        if self.cipher is None:
            raise MalformedCallback(
                f"{self.source} has no encoding_aes_key, so it cannot take encrypted callbacks; "
                "configure the key or switch the platform to plain mode"
            )
        return self.cipher


class Targets:
    """The targets of one endpoint kind, found by the path's name or by signature."""

    def __init__(self, kind: str, param: str, targets: Iterable[Target]) -> None:
        self.kind = kind
        self.param = param
        self._by_name = {t.name: t for t in targets}

    def __len__(self) -> int:
        return len(self._by_name)

    def named(self, request: web.Request) -> Target | None:
        """The target the path names, None when the path names none; 404 when unknown."""
        name = request.match_info.get(self.param)
        if name is None:
            if not self._by_name:
                raise UnknownTarget(f"no {self.kind} is configured")
            return None
        target = self._by_name.get(name)
        if target is None:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise UnknownTarget(f"unknown {self.kind} {name!r} (configured: {known})")
        return target

    def pick(
        self, request: web.Request, signature: str, timestamp: str, nonce: str, *data: str
    ) -> Target:
        """The named target if its token signed the request, else the one whose token did."""
        target = self.named(request)
        if target is None:
            return self.by_signature(signature, timestamp, nonce, *data)
        if not signature_matches(signature, target.token, timestamp, nonce, *data):
            raise SignatureError(f"signature does not match {self.kind} {target.name!r}")
        return target

    def by_signature(self, signature: str, timestamp: str, nonce: str, *data: str) -> Target:
        """The target whose token produced ``signature``; SignatureError when none did."""
        for target in self._by_name.values():
            if signature_matches(signature, target.token, timestamp, nonce, *data):
                return target
        raise SignatureError(f"signature matches no configured {self.kind}")


def wecom_targets(config: Config) -> Targets:
    corp_id = config.wecom.corp_id
    return Targets(
        "WeCom app",
        "app",
        (
            Target(
                app.name,
                f"wecom:{app.name}",
                app.token,
                CallbackCipher.wecom(app.token, app.encoding_aes_key, corp_id),
            )
            for app in config.wecom.apps
        ),
    )


def aibot_targets(config: Config) -> Targets:
    return Targets(
        "AI bot",
        "bot",
        (
            Target(
                bot.name,
                f"aibot:{bot.name}",
                bot.token,
                CallbackCipher.aibot(bot.token, bot.encoding_aes_key),
            )
            for bot in config.wecom.aibots
        ),
    )


def mp_targets(config: Config) -> Targets:
    return Targets(
        "Official Account",
        "account",
        (
            Target(
                account.name,
                f"mp:{account.name}",
                account.token,
                None
                if account.encoding_aes_key is None
                else CallbackCipher.mp(account.token, account.encoding_aes_key, account.app_id),
            )
            for account in config.mp
        ),
    )
