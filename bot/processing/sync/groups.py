"""A customer group and its members (``externalcontact/groupchat/get``): the reconcile.

Callback increments can be lost or reordered; the member list read here is the truth. A
member it lists who was not in the group joins, a member it no longer lists leaves (with
``left_at``; the row stays for history). Joins are only published once the group had been
read before, so a group seen for the first time does not announce everyone already in it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.processing import refresh_queue
from bot.processing.directory import DirectoryApi
from bot.processing.messages import epoch_to_utc, is_external_id
from bot.processing.people import customer_by_external_id, group_by_chat_id, group_member
from bot.processing.sync.base import Sync, SyncContext
from sop.events import JoinedGroup, LeftGroup
from store.models import CustomerGroup, GroupMember


async def apply_group(ctx: SyncContext, chat_id: str, chat: dict[str, Any]) -> None:
    group = await group_by_chat_id(ctx.session, chat_id, ctx.now)
    baseline = group.synced_at is not None
    group.name = chat.get("name") or group.name
    group.owner_userid = chat.get("owner") or group.owner_userid
    group.notice = chat.get("notice", group.notice)
    group.platform_created_at = epoch_to_utc(chat.get("create_time")) or group.platform_created_at
    group.member_version = chat.get("member_version") or group.member_version
    listed: set[str] = set()
    for entry in chat.get("member_list") or []:
        userid = str(entry["userid"])
        listed.add(userid)
        await _apply_member(ctx, group, entry, announce=baseline)
    active = await ctx.session.scalars(
        select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.left_at.is_(None))
    )
    for member in active:
        if member.member_userid not in listed:
            member.left_at = ctx.now
            await _announce(ctx, group, member, joined=False)
    group.synced_at = ctx.now


async def _apply_member(
    ctx: SyncContext, group: CustomerGroup, entry: dict[str, Any], *, announce: bool
) -> None:
    userid = str(entry["userid"])
    member = await group_member(ctx.session, group.id, userid)
    was_in = member.left_at is None and member.joined_at is not None
    member_type = entry.get("type")
    member.member_type = member_type or member.member_type
    if member_type == 2 or is_external_id(userid):
        customer = await customer_by_external_id(ctx.session, userid, ctx.now)
        customer.name = customer.name or entry.get("name") or None
        customer.unionid = customer.unionid or entry.get("unionid") or None
        member.customer_id = customer.id
    member.name = entry.get("name") or member.name
    member.group_nickname = entry.get("group_nickname") or member.group_nickname
    member.invitor_userid = (entry.get("invitor") or {}).get("userid") or member.invitor_userid
    member.join_scene = entry.get("join_scene", member.join_scene)
    member.joined_at = epoch_to_utc(entry.get("join_time")) or member.joined_at or ctx.now
    member.left_at = None
    member.quit_scene = None
    if not was_in and announce:
        await _announce(ctx, group, member, joined=True)


async def _announce(
    ctx: SyncContext, group: CustomerGroup, member: GroupMember, *, joined: bool
) -> None:
    verb = "joined" if joined else "left"
    ctx.record(
        kind="joined_group" if joined else "left_group",
        summary=f"{member.member_userid} {verb} the group (found by reconcile)",
        data={"chat_id": group.chat_id, "member": member.member_userid, "reconciled": True},
        customer_id=member.customer_id,
        group_id=group.id,
        staff_userid=None if is_external_id(member.member_userid) else member.member_userid,
    )
    fields: dict[str, Any] = {
        "group_id": group.id,
        "chat_id": group.chat_id,
        "member_userid": member.member_userid,
        "customer_id": member.customer_id,
    }
    if joined:
        await ctx.publish(JoinedGroup(**ctx.stamp(), **fields, join_scene=member.join_scene))
    else:
        await ctx.publish(LeftGroup(**ctx.stamp(), **fields))


async def _fetch(directory: DirectoryApi, chat_id: str) -> dict[str, Any]:
    return await directory.get_group_chat(chat_id)


SYNC = Sync(refresh_queue.GROUP, _fetch, apply_group)
