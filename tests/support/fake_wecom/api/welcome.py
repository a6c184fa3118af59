"""Welcome messages (欢迎语): ``externalcontact/send_welcome_msg``.

A code is registered with :meth:`FakeCorp.add_welcome_code` (what the add event carries) and
is good for 20 seconds (``outbound.welcome_validity``) on the fake's clock: 41049 without a
code, 41050 for an unknown or expired one, 41051 once it has been used (the customer and the
staff member are then talking). Text or attachments are required (40063 when neither is given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.fake_wecom.api.base import ApiFailure, ApiRequest, Route
from tests.support.fake_wecom.outbound import Delivery

if TYPE_CHECKING:
    from tests.support.fake_wecom.corp import FakeCorp

MAX_TEXT_BYTES = 4000
MAX_ATTACHMENTS = 9


def send_welcome_msg(corp: FakeCorp, request: ApiRequest) -> dict[str, Any]:
    body = request.body or {}
    code = body.get("welcome_code")
    if not code:
        raise ApiFailure(41049)
    text = body.get("text")
    attachments = body.get("attachments", [])
    content = text.get("content") if isinstance(text, dict) else None
    if not content and not attachments:
        raise ApiFailure(40063, "text or attachments is required")
    if content and len(str(content).encode("utf-8")) > MAX_TEXT_BYTES:
        raise ApiFailure(45002)
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise ApiFailure(40058, f"attachments must be a list of at most {MAX_ATTACHMENTS}")
    now = corp.now()
    welcome = corp.outbound.welcome_codes.get(str(code))
    if welcome is None or now > welcome.issued_at + corp.outbound.welcome_validity:
        raise ApiFailure(41050)
    if welcome.used_at is not None:
        raise ApiFailure(41051)
    welcome.used_at = now
    corp.outbound.deliveries.append(
        Delivery(
            "externalcontact/send_welcome_msg",
            welcome.external_userid,
            dict(body),
            now,
            corp.outbound.new_msgid(),
        )
    )
    return {}


ROUTES = [Route("externalcontact/send_welcome_msg", "POST", send_welcome_msg)]
