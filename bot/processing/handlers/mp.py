"""Official Account followers: follow/unfollow, and messages that open the 48-hour window.

A follower is known by openid on one account; the customer behind it is found by unionid
when the payload has one (so a WeCom contact and a follower can be the same customer).
"""

from __future__ import annotations

from bot.processing.context import HandlerContext
from bot.processing.handlers.inbound import message_received, touch
from bot.processing.messages import AppMessage, PlatformMessage, SubscribeEvent, UnsubscribeEvent
from bot.processing.records import CustomerRecord, FollowerRecord
from bot.processing.router import Router
from bot.processing.subjects import Subjects
from sop.events import Subscribed
from store.models import Direction

router = Router("mp")


def _account_of(source: str) -> str:
    return source.partition(":")[2] or source


def _account(ctx: HandlerContext) -> str:
    return _account_of(ctx.source)


def _unionid(message: PlatformMessage) -> str | None:
    value = message.raw.get("UnionId") or message.raw.get("unionid")
    return str(value) if value else None


def _names(source: str, message: PlatformMessage, subjects: Subjects) -> None:
    """The follower (and so the customer behind it)."""
    if message.sender:
        subjects.followers.add((_account_of(source), message.sender, _unionid(message)))


async def _follower(
    ctx: HandlerContext, message: PlatformMessage
) -> tuple[FollowerRecord, CustomerRecord]:
    if not message.sender:
        raise ValueError(f"{message.route} without FromUserName (openid)")
    follower = await ctx.people.follower(_account(ctx), message.sender, _unionid(message))
    customer = await ctx.people.customer_by_id(follower.customer_id)
    unionid = _unionid(message)
    if unionid and customer.unionid is None:
        customer.unionid = unionid
    return follower, customer


@router.on(SubscribeEvent, "mp:event:subscribe", names=_names)
async def subscribed(ctx: HandlerContext, event: SubscribeEvent) -> None:
    follower, customer = await _follower(ctx, event)
    follower.subscribed = True
    follower.subscribed_at = ctx.occurred_at(event)
    follower.unsubscribed_at = None
    follower.subscribe_scene = event.scene
    touch(customer, ctx.occurred_at(event))
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="subscribed",
        summary=f"followed {follower.account}"
        + (f" (scene {event.scene})" if event.scene else ""),
        data={"account": follower.account, "openid": follower.openid, "scene": event.scene},
        customer_id=customer.id,
    )
    await ctx.publish(
        Subscribed(
            **ctx.stamp(event),
            customer_id=customer.id,
            account=follower.account,
            openid=follower.openid,
            scene=event.scene,
        )
    )


@router.on(UnsubscribeEvent, "mp:event:unsubscribe", names=_names)
async def unsubscribed(ctx: HandlerContext, event: UnsubscribeEvent) -> None:
    follower, customer = await _follower(ctx, event)
    follower.subscribed = False
    follower.unsubscribed_at = ctx.occurred_at(event)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="unsubscribed",
        summary=f"unfollowed {follower.account}",
        data={"account": follower.account, "openid": follower.openid},
        customer_id=customer.id,
    )
    await ctx.publish(
        Subscribed(
            **ctx.stamp(event),
            customer_id=customer.id,
            account=follower.account,
            openid=follower.openid,
            subscribed=False,
        )
    )


@router.on(AppMessage, "mp:msg", names=_names)
async def follower_message(ctx: HandlerContext, message: AppMessage) -> None:
    follower, customer = await _follower(ctx, message)
    when = ctx.occurred_at(message)
    # Only a follower can write to an account: one who followed before the toolkit was
    # deployed is known from their first message.
    follower.subscribed = True
    follower.unsubscribed_at = None
    if follower.last_message_at is None or follower.last_message_at < when:
        follower.last_message_at = when
    touch(customer, when)
    await message_received(
        ctx,
        message,
        msg_type=message.msg_type,
        text=message.text,
        msg_id=message.msg_id,
        customer_id=customer.id,
        data={"account": follower.account, "openid": follower.openid},
    )
