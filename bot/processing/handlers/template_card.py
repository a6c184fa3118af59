"""A staff member pressed a button on a template card (app or AI bot): ``CardPressed``."""

from __future__ import annotations

from bot.processing.context import HandlerContext
from bot.processing.router import Router
from bot.processing.wecom_events import TemplateCardEvent
from sop.events import CardPressed
from store.models import Direction

router = Router("template_card")


@router.on(TemplateCardEvent, "wecom:event:template_card_event", "aibot:event:template_card_event")
async def card_pressed(ctx: HandlerContext, event: TemplateCardEvent) -> None:
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
        )
    )
