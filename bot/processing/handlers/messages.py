"""Messages a member (or, rarely, a customer) sends to a WeCom app."""

from __future__ import annotations

from bot.processing.context import HandlerContext
from bot.processing.handlers.inbound import message_received, sender_names
from bot.processing.messages import AppMessage
from bot.processing.router import Router

router = Router("messages")

TYPES = ("text", "image", "voice", "video", "shortvideo", "file", "location", "link")


@router.on(AppMessage, *(f"wecom:msg:{t}" for t in TYPES), names=sender_names)
async def app_message(ctx: HandlerContext, message: AppMessage) -> None:
    await message_received(
        ctx,
        message,
        msg_type=message.msg_type,
        text=message.text,
        msg_id=message.msg_id,
        data={"agent_id": message.agent_id},
    )
