"""A customer's details and every staff member's relationship with them (``externalcontact/get``).

Relationships listed are updated (remark, description, add_way, channel state, operator,
added time; a half-added customer the staff member accepted becomes active); their tags are
diffed. Removal is left to the del_* events: a fetch that raced an event must not revive a
relationship the event ended. ``CustomerUpdated`` is published when anything changed.
"""

from __future__ import annotations

from typing import Any

from bot.processing import refresh_queue
from bot.processing.directory import DirectoryApi
from bot.processing.messages import epoch_to_utc
from bot.processing.people import customer_by_external_id, relationship, staff_by_userid
from bot.processing.sync.base import Sync, SyncContext
from bot.processing.sync.tags import sync_customer_tags
from sop.events import CustomerUpdated
from store.models import Customer, CustomerStaff, FollowState

_CUSTOMER_FIELDS = ("name", "type", "avatar", "gender", "unionid", "corp_name", "position")
_FOLLOW_FIELDS = ("remark", "description", "add_way", "channel_state", "oper_userid", "added_at")


def _values(row: Customer | CustomerStaff, names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in names)


async def apply_customer(ctx: SyncContext, external_userid: str, payload: dict[str, Any]) -> None:
    contact: dict[str, Any] = payload.get("external_contact") or {}
    customer = await customer_by_external_id(ctx.session, external_userid, ctx.now)
    before = _values(customer, _CUSTOMER_FIELDS)
    customer.name = contact.get("name") or customer.name
    customer.type = contact.get("type", customer.type)
    customer.avatar = contact.get("avatar") or customer.avatar
    customer.gender = contact.get("gender", customer.gender)
    customer.unionid = contact.get("unionid") or customer.unionid
    customer.corp_name = (
        contact.get("corp_full_name") or contact.get("corp_name") or (customer.corp_name)
    )
    customer.position = contact.get("position") or customer.position
    customer.synced_at = ctx.now
    changes = int(before != _values(customer, _CUSTOMER_FIELDS))
    for follow in payload.get("follow_user") or []:
        changes += await _apply_follow(ctx, customer, follow)
    if changes:
        await ctx.publish(
            CustomerUpdated(
                **ctx.stamp(), customer_id=customer.id, external_userid=external_userid
            )
        )


async def _apply_follow(ctx: SyncContext, customer: Customer, follow: dict[str, Any]) -> int:
    userid = str(follow["userid"])
    staff = await staff_by_userid(ctx.session, userid, ctx.now)
    if staff.synced_at is None:
        await refresh_queue.request_refresh(ctx.session, refresh_queue.STAFF, userid, ctx.clock)
    row = await relationship(ctx.session, customer.id, userid)
    before = (*_values(row, _FOLLOW_FIELDS), row.state)
    row.remark = follow.get("remark", row.remark)
    row.description = follow.get("description", row.description)
    row.add_way = follow.get("add_way", row.add_way)
    row.channel_state = follow.get("state") or row.channel_state
    row.oper_userid = follow.get("oper_userid") or row.oper_userid
    row.added_at = epoch_to_utc(follow.get("createtime")) or row.added_at
    if row.state is FollowState.HALF:
        row.state = FollowState.ACTIVE
    changes = int(before != (*_values(row, _FOLLOW_FIELDS), row.state))
    return changes + await sync_customer_tags(ctx, customer, userid, follow.get("tags") or [])


async def _fetch(directory: DirectoryApi, external_userid: str) -> dict[str, Any]:
    return await directory.get_external_contact(external_userid)


SYNC = Sync(refresh_queue.CUSTOMER, _fetch, apply_customer)
