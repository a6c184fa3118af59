"""Recording a message someone sent us: the timeline entry, the customer's last interaction,
and ``MessageReceived``. Shared by the app, Official Account and AI bot handlers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.processing.context import HandlerContext
from bot.processing.messages import PlatformMessage, is_external_id
from bot.processing.records import CustomerRecord
from bot.processing.subjects import Subjects
from sop.events import MessageReceived
from store.models import Direction


def sender_names(_source: str, message: PlatformMessage, subjects: Subjects) -> None:
    """A message's sender, when it is a customer."""
    subjects.customer(message.sender)


def touch(customer: CustomerRecord, when: datetime) -> None:
    """Move ``last_interaction_at`` forward (never back: rows may arrive out of order)."""
    if customer.last_interaction_at is None or customer.last_interaction_at < when:
        customer.last_interaction_at = when


async def message_received(
    ctx: HandlerContext,
    message: PlatformMessage,
    *,
    msg_type: str,
    text: str,
    msg_id: str | None,
    customer_id: int | None = None,
    group_id: int | None = None,
    chat_type: str = "single",
    data: dict[str, Any] | None = None,
) -> None:
    """Timeline + ``MessageReceived`` for a message from ``message.sender``.

    A sender with an external id is a customer (created if unknown); anyone else is staff.
    """
    when = ctx.occurred_at(message)
    staff_userid: str | None = None
    if customer_id is None and is_external_id(message.sender):
        customer = await ctx.people.customer(message.sender)
        customer_id = customer.id
        touch(customer, when)
    elif customer_id is None:
        staff_userid = message.sender or None
    details = {"msg_type": msg_type, "msg_id": msg_id, "text": text, **(data or {})}
    ctx.record(
        message,
        direction=Direction.INBOUND,
        kind="message",
        summary=text,
        data=details,
        customer_id=customer_id,
        group_id=group_id,
        staff_userid=staff_userid,
    )
    await ctx.publish(
        MessageReceived(
            **ctx.stamp(message),
            msg_type=msg_type,
            text=text,
            customer_id=customer_id,
            staff_userid=staff_userid,
            group_id=group_id,
            chat_type=chat_type,
            msg_id=msg_id,
            data=details,
        )
    )
