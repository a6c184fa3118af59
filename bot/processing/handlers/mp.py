"""Official Account followers: follow/unfollow, and messages that open the 48-hour window.

A follower is known by openid on one account; the customer behind it is found by unionid
when the payload has one (so a WeCom contact and a follower can be the same customer).
"""

from __future__ import annotations

from bot.processing.context import HandlerContext
from bot.processing.handlers.inbound import message_received, touch
from bot.processing.messages import AppMessage, PlatformMessage, SubscribeEvent, UnsubscribeEvent
from bot.processing.people import mp_follower
from bot.processing.router import Router
from sop.events import Subscribed
from store.models import Customer, Direction, MpFollower

router = Router("mp")


def _account(ctx: HandlerContext) -> str:
    return ctx.source.partition(":")[2] or ctx.source


def _unionid(message: PlatformMessage) -> str | None:
    value = message.raw.get("UnionId") or message.raw.get("unionid")
    return str(value) if value else None


async def _follower(ctx: HandlerContext, message: PlatformMessage) -> tuple[MpFollower, Customer]:
    if not message.sender:
        raise ValueError(f"{message.route} without FromUserName (openid)")
    follower = await mp_follower(
        ctx.session, _account(ctx), message.sender, ctx.clock.now(), _unionid(message)
    )
    customer = await ctx.session.get_one(Customer, follower.customer_id)
    unionid = _unionid(message)
    if unionid and customer.unionid is None:
        customer.unionid = unionid
    return follower, customer


@router.on(SubscribeEvent, "mp:event:subscribe")
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


@router.on(UnsubscribeEvent, "mp:event:unsubscribe")
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


@router.on(AppMessage, "mp:msg")
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
