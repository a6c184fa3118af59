"""What an API family module of the fake provides: routes, and failures as errcodes.

A family module defines handlers ``(corp, request) -> payload`` and lists them in ``ROUTES``;
a handler refuses a request by raising :class:`ApiFailure` with the platform's errcode.
Adding a family (message/send, send_welcome_msg, add_msg_template, ...) is one new module
plus one line in :mod:`tests.support.fake_wecom.api`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp

#: The platform's words for the errcodes the fake answers (errmsg before the hint).
ERRMSGS = {
    -1: "system busy",
    40001: "invalid credential",
    40003: "invalid userid",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40050: "chatid not found",
    40056: "invalid agentid",
    40058: "invalid parameter",
    40063: "some parameters are empty",
    40068: "invalid tagid",
    40071: "tag name already exists",
    40072: "invalid tag name length",
    40096: "invalid external userid",
    40097: "the handover member has not resigned",
    40100: "the customer is already being transferred",
    40129: "the customer was transferred too often (2 in 90 days)",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41009: "missing userid",
    41010: "missing url",
    41011: "missing agentid",
    41016: "missing title",
    41033: "missing description",
    41035: "missing external userid",
    41049: "missing welcome code",
    41050: "invalid welcome code",
    41051: "customer and member already started chatting",
    42001: "access_token expired",
    42014: "invalid task_id",
    42019: "missing button key",
    42020: "missing button name",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    60111: "userid not found",
    60123: "invalid party id",
    81013: "user & party & tag all invalid",
    82001: "All touser & toparty & totag invalid",
    84061: "not external contact",
    90500: "the owner of this chat is not resigned",
}


class ApiFailure(Exception):
    """Answer ``errcode`` instead of a payload."""

    def __init__(self, errcode: int, detail: str = "") -> None:
        self.errcode = errcode
        self.detail = detail
        super().__init__(f"errcode {errcode} {detail}".strip())


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: dict[str, Any] | None
    secret: str | None  # the app whose token authorised the call; None for gettoken


Handler = Callable[["FakeCorp", ApiRequest], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    path: str  # under /cgi-bin/, without the leading slash
    method: str  # GET or POST
    handler: Handler
    needs_token: bool = True


def required_query(request: ApiRequest, name: str, errcode: int) -> str:
    value = request.query.get(name, "")
    if not value:
        raise ApiFailure(errcode, f"{name} is required")
    return value


def required_body(request: ApiRequest, name: str, errcode: int = 40063) -> Any:
    body = request.body or {}
    value = body.get(name)
    if value is None or value == "":
        raise ApiFailure(errcode, f"{name} is required in the JSON body")
    return value
