"""A member followed or left the app, opened it, or used its menu: ``StaffAction``."""

from __future__ import annotations

from bot.processing.context import HandlerContext
from bot.processing.messages import AppEvent
from bot.processing.router import Router
from sop.events import StaffAction
from store.models import Direction

router = Router("app_events")

EVENTS = ("subscribe", "unsubscribe", "enter_agent", "click", "view")


@router.on(AppEvent, *(f"wecom:event:{e}" for e in EVENTS))
async def staff_action(ctx: HandlerContext, event: AppEvent) -> None:
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="staff_action",
        summary=f"{event.sender} {event.summary()}",
        data={"event": event.event, "key": event.event_key, "agent_id": event.agent_id},
        staff_userid=event.sender,
    )
    await ctx.publish(
        StaffAction(
            **ctx.stamp(event), staff_userid=event.sender, action=event.event, key=event.event_key
        )
    )
