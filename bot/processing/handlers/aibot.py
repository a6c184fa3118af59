"""The AI bot: @-mentions in group chats and direct messages, and its events.

A group chat the bot hears in gets a group row (created if unknown) so its messages have a
timeline. ``stream`` callbacks only poll for the next chunk of an answer: they are protocol,
not conversation, and leave no trace.
"""

from __future__ import annotations

from bot.processing.aibot_messages import AibotEvent, AibotMessage
from bot.processing.context import HandlerContext
from bot.processing.handlers.inbound import message_received
from bot.processing.messages import PlatformMessage, is_external_id
from bot.processing.router import Router
from bot.processing.subjects import Subjects
from sop.events import StaffAction
from store.models import Direction

router = Router("aibot")


def _names(_source: str, message: PlatformMessage, subjects: Subjects) -> None:
    if not isinstance(message, AibotMessage) or message.msg_type == "stream":
        return
    subjects.customer(message.sender)
    if message.chat_type == "group" and message.chat_id:
        subjects.groups.add(message.chat_id)


@router.on(AibotMessage, "aibot:msg", names=_names)
async def bot_message(ctx: HandlerContext, message: AibotMessage) -> None:
    if message.msg_type == "stream":
        return
    group_id = None
    if message.chat_type == "group" and message.chat_id:
        group_id = (await ctx.people.group(message.chat_id)).id
    await message_received(
        ctx,
        message,
        msg_type=message.msg_type,
        text=message.text,
        msg_id=message.msg_id,
        group_id=group_id,
        chat_type=message.chat_type,
        data={
            "aibot_id": message.aibot_id,
            "chat_id": message.chat_id,
            "urls": list(message.urls),
            "quote": message.quote,
        },
    )


@router.on(AibotEvent, "aibot:event")
async def bot_event(ctx: HandlerContext, event: AibotEvent) -> None:
    """enter_chat by a member is a ``StaffAction``; other events are kept on the timeline."""
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="bot_event",
        summary=f"{event.sender} {event.summary()}",
        data={"event_type": event.event_type, "detail": dict(event.detail or {})},
        staff_userid=None if is_external_id(event.sender) else event.sender or None,
    )
    if event.event_type == "enter_chat" and event.sender and not is_external_id(event.sender):
        await ctx.publish(
            StaffAction(**ctx.stamp(event), staff_userid=event.sender, action="enter_chat")
        )
