"""The fallback: a payload nobody handles is kept on the timeline as ``raw``, whole."""

from __future__ import annotations

from bot.processing.context import HandlerContext
from bot.processing.messages import PlatformMessage, is_external_id
from bot.processing.people import customer_by_external_id
from bot.processing.router import Router
from store.models import Direction

router = Router("unknown")


@router.fallback
async def raw(ctx: HandlerContext, message: PlatformMessage) -> None:
    """Shown on the customer's timeline when the payload names an external user."""
    payload = dict(message.raw)
    external = next(
        (
            str(payload[key])
            for key in ("ExternalUserID", "FromUserName")
            if is_external_id(str(payload.get(key) or ""))
        ),
        None,
    )
    customer_id = None
    if external is not None:
        customer_id = (await customer_by_external_id(ctx.session, external, ctx.clock.now())).id
    ctx.record(
        message,
        direction=Direction.EVENT,
        kind="raw",
        summary=message.summary(),
        data={"route": message.route, "payload": payload},
        customer_id=customer_id,
    )
