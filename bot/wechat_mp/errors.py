"""Official Account API errors: the WeCom error types, with the Official Account's meanings.

The two platforms share the wire format (``errcode``/``errmsg``) and most transient codes, so
the MP client reuses :mod:`bot.wecom.transport` and its typed errors; what differs is what an
errcode means and how to fix it, which this module adds to the message.
"""

from __future__ import annotations

from bot.wecom.errors import WecomApiError

#: 45015: the customer's last message is older than 48 hours.
OUTSIDE_WINDOW = 45015
#: 45047: the customer-service messages allowed since the customer's last message are used.
QUOTA_USED = 45047
#: On an API call the Official Account answers 40001 (not only 40014/42001) for a token that
#: is invalid or no longer the latest: fetch a new one once.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
#: What ``/cgi-bin/token`` answers for a wrong app id or secret, or a server not whitelisted.
CREDENTIAL_ERRCODES = frozenset({40001, 40013, 40125, 40164, 41002, 41004})

_HINTS = {
    40001: "the token or the secret was refused: check mp_accounts[].secret in config.yaml",
    40003: "no follower with this openid for this Official Account",
    40013: "the app id is wrong: check mp_accounts[].app_id in config.yaml",
    40125: "the secret is wrong: check mp_accounts[].secret in config.yaml",
    40164: "this server's IP is not on the Official Account's IP whitelist",
    42001: "the access token expired again right after a refresh; check the clock",
    45015: "the customer's last message is more than 48 hours old: the window is closed",
    45047: "the customer-service messages allowed since the customer's last message are used",
    48001: "the Official Account may not call this API (unverified account?)",
}


class MpApiError(WecomApiError):
    """An Official Account API call failed; ``transient`` as the WeCom error it came from."""

    def __init__(
        self,
        api: str,
        errcode: int | None,
        errmsg: str,
        *,
        status: int | None = None,
        maybe_applied: bool = False,
        transient: bool = False,
    ) -> None:
        self.transient = transient
        super().__init__(api, errcode, errmsg, status=status, maybe_applied=maybe_applied)

    @classmethod
    def from_wecom(cls, exc: WecomApiError) -> MpApiError:
        return cls(
            exc.api,
            exc.errcode,
            exc.errmsg,
            status=exc.status,
            maybe_applied=exc.maybe_applied,
            transient=exc.transient,
        )

    def _describe(self) -> str:
        code = f"errcode {self.errcode}" if self.errcode is not None else "no errcode"
        text = f"Official Account API {self.api} failed: {code}: {self.errmsg}"
        hint = _HINTS.get(self.errcode) if self.errcode is not None else None
        return f"{text} ({hint})" if hint else text


class MpCredentialsError(MpApiError):
    """``/cgi-bin/token`` refused the app id or secret: fix the configuration.

    Transient for the sender, like a refused WeCom secret: the row is retried (within its
    limit) so that fixing the configuration saves it.
    """

    def __init__(self, api: str, errcode: int | None, errmsg: str, *, credential: str) -> None:
        self.credential = credential
        super().__init__(api, errcode, errmsg, transient=True)

    def _describe(self) -> str:
        return f"credential {self.credential!r} refused: {super()._describe()}"
