"""The fallback: a payload nobody handles is kept on the timeline as ``raw``, whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.processing.context import HandlerContext
from bot.processing.messages import PlatformMessage, is_external_id
from bot.processing.router import Router
from bot.processing.subjects import Subjects
from store.models import Direction

router = Router("unknown")


def _external(payload: Mapping[str, Any]) -> str | None:
    return next(
        (
            str(payload[key])
            for key in ("ExternalUserID", "FromUserName")
            if is_external_id(str(payload.get(key) or ""))
        ),
        None,
    )


def _names(_source: str, message: PlatformMessage, subjects: Subjects) -> None:
    subjects.customer(_external(message.raw))


async def raw(ctx: HandlerContext, message: PlatformMessage) -> None:
    """Shown on the customer's timeline when the payload names an external user."""
    payload = dict(message.raw)
    external = _external(payload)
    customer_id = None
    if external is not None:
        customer_id = (await ctx.people.customer(external)).id
    ctx.record(
        message,
        direction=Direction.EVENT,
        kind="raw",
        summary=message.summary(),
        data={"route": message.route, "payload": payload},
        customer_id=customer_id,
    )


router.fallback(raw, names=_names)
