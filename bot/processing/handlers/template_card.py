"""A staff member pressed a button on a template card (app or AI bot): ``CardPressed``.

The press names the card's ``task_id``; the outbox row the card was sent as tells who created
it (its idempotency key), so the event carries ``outbox_id`` and ``origin`` for
:class:`sop.delivery.card_routes.CardRoutes` to hand the press to its creator.
"""

from __future__ import annotations

from bot.processing.context import HandlerContext
from bot.processing.router import Router
from bot.processing.wecom_events import TemplateCardEvent
from sop.delivery.card_routes import card_origin
from sop.events import CardPressed
from store.models import Direction

router = Router("template_card")


@router.on(TemplateCardEvent, "wecom:event:template_card_event", "aibot:event:template_card_event")
async def card_pressed(ctx: HandlerContext, event: TemplateCardEvent) -> None:
    await ctx.savepoint()
    origin = await card_origin(ctx.session, event.task_id)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="card_pressed",
        summary=f"{event.sender} {event.summary()}",
        data={
            "event_key": event.event_key,
            "task_id": event.task_id,
            "card_type": event.card_type,
            "response_code": event.response_code,
            "outbox_id": origin.outbox_id if origin else None,
            "origin": origin.key if origin else None,
            "selected": {
                item.question_key: list(item.option_ids) for item in event.selected_items
            },
        },
        staff_userid=event.sender or None,
    )
    await ctx.publish(
        CardPressed(
            **ctx.stamp(event),
            staff_userid=event.sender,
            event_key=event.event_key,
            task_id=event.task_id,
            response_code=event.response_code,
            card_type=event.card_type,
            outbox_id=origin.outbox_id if origin else None,
            origin=origin.key if origin else None,
        )
    )
