"""What can go wrong when talking to the WeCom API, sorted by what the caller should do about it.

Callers decide from the type alone: a :class:`TransientWecomError` is worth trying again later
(with backoff, bounded by the caller's own policy); any other :class:`WecomApiError` will fail
the same way until someone changes the request, the data or the configuration.
``maybe_applied`` tells a sender whether the platform may have acted on a request that failed
(a timeout after the request went out), which matters for at-most-once customer messages.
"""

from __future__ import annotations

#: The platform is busy or rate-limits us: -1 system busy, 45009 frequency limit,
#: 45033 concurrency limit. The request was refused, so it was not applied.
TRANSIENT_ERRCODES = frozenset({-1, 45009, 45033})
#: The access token was refused: 40014 invalid, 42001 expired. The client fetches a new
#: token and retries once; a second refusal surfaces as transient (a later try fetches again).
TOKEN_ERRCODES = frozenset({40014, 42001})
#: gettoken refused the corp id or secret: nothing but a configuration change helps.
CREDENTIAL_ERRCODES = frozenset({40001, 40013, 40091, 41002, 41004})

_HINTS = {
    -1: "the platform is busy; try again later",
    40001: "the secret is wrong: check the app's secret in config.yaml (wecom.apps[].secret)",
    40013: "the corp id is wrong: check wecom.corp_id in config.yaml",
    40014: "the access token was refused even after fetching a new one",
    40091: "the secret belongs to another corp or app: check wecom.apps[].secret",
    42001: "the access token expired again right after a refresh; check the clock",
    45009: "API frequency limit reached; the block lifts after a minute or an hour",
    45033: "API concurrency limit reached; send fewer requests at once",
    48002: "the app may not call this API: add it to 客户联系 > 可调用应用 in the admin console",
    60011: "the staff member is outside the app's visibility scope",
    60111: "no staff member with this userid",
    84061: "no customer relation: the customer is not (or no longer) a contact of this staff",
}


class WecomError(Exception):
    """Base class of every error raised by :mod:`bot.wecom`."""


class WecomApiError(WecomError):
    """A WeCom API call failed: the platform answered an errcode, or did not answer usably.

    ``errcode`` is None when no errcode came back (HTTP error status, timeout, dropped
    connection, a body that is not JSON); ``status`` is the HTTP status when there was one.
    """

    transient = False

    def __init__(
        self,
        api: str,
        errcode: int | None,
        errmsg: str,
        *,
        status: int | None = None,
        maybe_applied: bool = False,
    ) -> None:
        self.api = api
        self.errcode = errcode
        self.errmsg = errmsg
        self.status = status
        self.maybe_applied = maybe_applied
        super().__init__(self._describe())

    def _describe(self) -> str:
        code = f"errcode {self.errcode}" if self.errcode is not None else "no errcode"
        text = f"WeCom API {self.api} failed: {code}: {self.errmsg}"
        hint = _HINTS.get(self.errcode) if self.errcode is not None else None
        return f"{text} ({hint})" if hint else text


class TransientWecomError(WecomApiError):
    """Busy, rate-limited, unreachable or too slow: the same call may succeed later."""

    transient = True


class WecomCredentialsError(WecomApiError):
    """gettoken refused the corp id or the secret: fix the configuration, retrying won't help."""

    def __init__(self, api: str, errcode: int | None, errmsg: str, *, credential: str) -> None:
        self.credential = credential
        super().__init__(api, errcode, errmsg)

    def _describe(self) -> str:
        return f"credential {self.credential!r} refused by WeCom: {super()._describe()}"


def error_for(api: str, errcode: int, errmsg: str) -> WecomApiError:
    """The typed error for an errcode the platform answered."""
    if errcode in TRANSIENT_ERRCODES or errcode in TOKEN_ERRCODES:
        return TransientWecomError(api, errcode, errmsg)
    return WecomApiError(api, errcode, errmsg)
