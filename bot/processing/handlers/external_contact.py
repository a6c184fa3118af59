"""``change_external_contact``: who follows which customer, from the staff member's side.

Events carry ids only, so every change also asks for the customer's details to be fetched;
the refresher then diffs tags and publishes ``TagAdded``/``TagRemoved``/``CustomerUpdated``.
"""

from __future__ import annotations

from bot.processing import refresh_queue
from bot.processing.context import HandlerContext
from bot.processing.handlers.inbound import touch
from bot.processing.messages import PlatformMessage
from bot.processing.records import CustomerRecord, FollowRecord
from bot.processing.router import Router
from bot.processing.subjects import Subjects
from bot.processing.wecom_events import ExternalContactEvent
from sop.events import CustomerAdded, CustomerRemoved, TransferFailed
from store.models import Direction, FollowState, RemovedBy

router = Router("external_contact")
PREFIX = "wecom:event:change_external_contact"


def _names(_source: str, event: PlatformMessage, subjects: Subjects) -> None:
    """The customer, the staff member and their relationship."""
    if isinstance(event, ExternalContactEvent) and event.external_userid and event.userid:
        subjects.follows.add((event.external_userid, event.userid))


def _customer_only(_source: str, event: PlatformMessage, subjects: Subjects) -> None:
    if isinstance(event, ExternalContactEvent) and event.external_userid:
        subjects.customers.add(event.external_userid)


async def _load(
    ctx: HandlerContext, event: ExternalContactEvent
) -> tuple[CustomerRecord, FollowRecord]:
    if not event.external_userid or not event.userid:
        raise ValueError(
            f"{event.change_type} without UserID/ExternalUserID: "
            f"UserID={event.userid!r} ExternalUserID={event.external_userid!r}"
        )
    customer = await ctx.people.customer(event.external_userid)
    staff = await ctx.people.staff(event.userid)
    if staff.synced_at is None:
        await ctx.refresh(refresh_queue.STAFF, staff.userid)
    return customer, await ctx.people.follow(customer, event.userid)


def _data(event: ExternalContactEvent) -> dict[str, str | None]:
    return {
        "change_type": event.change_type,
        "userid": event.userid,
        "external_userid": event.external_userid,
        "state": event.state,
        "welcome_code": event.welcome_code,
        "source": event.change_source,
        "fail_reason": event.fail_reason,
    }


def _note(
    ctx: HandlerContext, event: ExternalContactEvent, customer_id: int, kind: str, summary: str
) -> None:
    """A timeline entry for a change between the customer and the event's staff member."""
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind=kind,
        summary=summary,
        data=_data(event),
        customer_id=customer_id,
        staff_userid=event.userid,
    )


@router.on(
    ExternalContactEvent,
    f"{PREFIX}:add_external_contact",
    f"{PREFIX}:add_half_external_contact",
    names=_names,
)
async def customer_added(ctx: HandlerContext, event: ExternalContactEvent) -> None:
    customer, follow = await _load(ctx, event)
    half = event.change_type == "add_half_external_contact"
    follow.state = FollowState.HALF if half else FollowState.ACTIVE
    if event.state is not None:
        follow.channel_state = event.state
    follow.added_at = ctx.occurred_at(event)
    follow.removed_at = None
    follow.removed_by = None
    touch(customer, follow.added_at)  # adding someone is talking to them: not "silent"
    await ctx.refresh(refresh_queue.CUSTOMER, event.external_userid)
    _note(
        ctx,
        event,
        customer.id,
        "customer_added",
        f"{event.userid} {'half-' if half else ''}added the customer"
        + (f" (channel {event.state})" if event.state else ""),
    )
    await ctx.publish(
        CustomerAdded(
            **ctx.stamp(event),
            customer_id=customer.id,
            external_userid=event.external_userid,
            staff_userid=event.userid,
            channel_state=event.state,
            welcome_code=event.welcome_code,
            half=half,
        )
    )


@router.on(ExternalContactEvent, f"{PREFIX}:edit_external_contact", names=_names)
async def customer_edited(ctx: HandlerContext, event: ExternalContactEvent) -> None:
    customer, _ = await _load(ctx, event)
    await ctx.refresh(refresh_queue.CUSTOMER, event.external_userid)
    _note(ctx, event, customer.id, "customer_edited", f"{event.userid} edited the customer")


@router.on(
    ExternalContactEvent,
    f"{PREFIX}:del_external_contact",
    f"{PREFIX}:del_follow_user",
    names=_names,
)
async def customer_removed(ctx: HandlerContext, event: ExternalContactEvent) -> None:
    customer, follow = await _load(ctx, event)
    by = RemovedBy.STAFF if event.change_type == "del_external_contact" else RemovedBy.CUSTOMER
    follow.state = FollowState.REMOVED
    follow.removed_at = ctx.occurred_at(event)
    follow.removed_by = by
    who = (
        f"{event.userid} removed the customer"
        if by is RemovedBy.STAFF
        else (f"the customer removed {event.userid}")
    )
    _note(ctx, event, customer.id, "customer_removed", who)
    await ctx.publish(
        CustomerRemoved(
            **ctx.stamp(event),
            customer_id=customer.id,
            external_userid=event.external_userid,
            staff_userid=event.userid,
            removed_by=by.value,
        )
    )


@router.on(ExternalContactEvent, f"{PREFIX}:transfer_fail", names=_names)
async def transfer_failed(ctx: HandlerContext, event: ExternalContactEvent) -> None:
    customer, follow = await _load(ctx, event)
    reason = event.fail_reason or "unknown"
    follow.transfer_fail_reason = reason
    _note(
        ctx, event, customer.id, "transfer_failed", f"transfer to {event.userid} failed: {reason}"
    )
    await ctx.publish(
        TransferFailed(
            **ctx.stamp(event),
            customer_id=customer.id,
            external_userid=event.external_userid,
            staff_userid=event.userid,
            reason=reason,
        )
    )


@router.on(ExternalContactEvent, f"{PREFIX}:msg_audit_approved", names=_customer_only)
async def msg_audit_approved(ctx: HandlerContext, event: ExternalContactEvent) -> None:
    """The customer agreed to chat archiving with this staff member."""
    customer = await ctx.people.customer(event.external_userid)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="msg_audit_approved",
        summary=f"the customer agreed to chat archiving with {event.userid}",
        data=_data(event),
        customer_id=customer.id,
        staff_userid=event.userid or None,
    )
