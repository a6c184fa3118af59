"""``change_external_chat``: customer groups and who is in them.

Member increments can be lost or reordered, so every change also asks for the group to be
re-read (the refresher reconciles the member list). A member counts as joining or leaving
only on a real transition, so an event that arrives after the reconcile changes nothing.
"""

from __future__ import annotations

from bot.processing import refresh_queue
from bot.processing.context import HandlerContext
from bot.processing.messages import PlatformMessage, is_external_id
from bot.processing.records import GroupRecord
from bot.processing.router import Router
from bot.processing.subjects import Subjects
from bot.processing.wecom_events import ExternalChatEvent
from sop.events import GroupChanged, JoinedGroup, LeftGroup
from store.models import Direction

router = Router("external_chat")
PREFIX = "wecom:event:change_external_chat"


def _data(event: ExternalChatEvent) -> dict[str, object]:
    return {
        "chat_id": event.chat_id,
        "change_type": event.change_type,
        "update_detail": event.update_detail,
        "join_scene": event.join_scene,
        "quit_scene": event.quit_scene,
        "mem_change_cnt": event.mem_change_cnt,
        "members": list(event.members),
        "last_mem_ver": event.last_mem_ver,
        "cur_mem_ver": event.cur_mem_ver,
    }


def _names(_source: str, event: PlatformMessage, subjects: Subjects) -> None:
    """The group, and for member changes each member (and the customers among them)."""
    if not isinstance(event, ExternalChatEvent) or not event.chat_id:
        return
    subjects.groups.add(event.chat_id)
    if event.update_detail in ("add_member", "del_member"):
        for userid in event.members:
            subjects.members.add((event.chat_id, userid))
            subjects.customer(userid)


async def _group(ctx: HandlerContext, event: ExternalChatEvent) -> GroupRecord:
    if not event.chat_id:
        raise ValueError(f"change_external_chat {event.change_type} without ChatId")
    return await ctx.people.group(event.chat_id)


async def _refresh(ctx: HandlerContext, chat_id: str) -> None:
    await ctx.refresh(refresh_queue.GROUP, chat_id)


@router.on(ExternalChatEvent, f"{PREFIX}:create", names=_names)
async def group_created(ctx: HandlerContext, event: ExternalChatEvent) -> None:
    group = await _group(ctx, event)
    await _refresh(ctx, event.chat_id)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="group_created",
        summary="group created",
        data=_data(event),
        group_id=group.id,
    )
    await ctx.publish(
        GroupChanged(**ctx.stamp(event), group_id=group.id, chat_id=group.chat_id, change="create")
    )


@router.on(
    ExternalChatEvent, f"{PREFIX}:update:add_member", f"{PREFIX}:update:del_member", names=_names
)
async def members_changed(ctx: HandlerContext, event: ExternalChatEvent) -> None:
    group = await _group(ctx, event)
    joined = event.update_detail == "add_member"
    in_sequence = group.member_version in (None, event.last_mem_ver)
    if in_sequence and event.cur_mem_ver:
        group.member_version = event.cur_mem_ver
    when = ctx.occurred_at(event)
    for userid in event.members:
        member = await ctx.people.member(group, userid)
        customer_id = await ctx.people.customer_id_for(userid)
        member.customer_id = member.customer_id or customer_id
        member.member_type = member.member_type or (2 if is_external_id(userid) else 1)
        was_in = member.left_at is None and member.joined_at is not None
        if joined:
            changed = not was_in
            if changed:
                member.joined_at = when
                member.join_scene = event.join_scene
                member.left_at = None
                member.quit_scene = None
        else:
            changed = member.left_at is None
            if changed:
                member.left_at = when
                member.quit_scene = event.quit_scene
        ctx.record(
            event,
            direction=Direction.EVENT,
            kind="joined_group" if joined else "left_group",
            summary=f"{userid} {'joined' if joined else 'left'} the group",
            data={**_data(event), "member": userid, "in_sequence": in_sequence},
            customer_id=member.customer_id,
            group_id=group.id,
            staff_userid=None if is_external_id(userid) else userid,
        )
        if not changed:
            continue
        if joined:
            await ctx.publish(
                JoinedGroup(
                    **ctx.stamp(event),
                    group_id=group.id,
                    chat_id=group.chat_id,
                    member_userid=userid,
                    customer_id=member.customer_id,
                    join_scene=event.join_scene,
                )
            )
        else:
            await ctx.publish(
                LeftGroup(
                    **ctx.stamp(event),
                    group_id=group.id,
                    chat_id=group.chat_id,
                    member_userid=userid,
                    customer_id=member.customer_id,
                    quit_scene=event.quit_scene,
                )
            )
    await _refresh(ctx, event.chat_id)


@router.on(
    ExternalChatEvent,
    f"{PREFIX}:update:change_owner",
    f"{PREFIX}:update:change_name",
    f"{PREFIX}:update:change_notice",
    names=_names,
)
async def group_changed(ctx: HandlerContext, event: ExternalChatEvent) -> None:
    group = await _group(ctx, event)
    detail = event.update_detail or "update"
    await _refresh(ctx, event.chat_id)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="group_changed",
        summary=f"group {detail.replace('_', ' ')}",
        data=_data(event),
        group_id=group.id,
    )
    await ctx.publish(
        GroupChanged(**ctx.stamp(event), group_id=group.id, chat_id=group.chat_id, change=detail)
    )


@router.on(ExternalChatEvent, f"{PREFIX}:update", names=_names)
async def group_updated(ctx: HandlerContext, event: ExternalChatEvent) -> None:
    """An update detail this code does not know yet: keep it and re-read the group."""
    group = await _group(ctx, event)
    await _refresh(ctx, event.chat_id)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="group_updated",
        summary=event.summary(),
        data=_data(event),
        group_id=group.id,
    )


@router.on(ExternalChatEvent, f"{PREFIX}:dismiss", names=_names)
async def group_dismissed(ctx: HandlerContext, event: ExternalChatEvent) -> None:
    group = await _group(ctx, event)
    group.dismissed_at = ctx.occurred_at(event)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="group_dismissed",
        summary="group dismissed",
        data=_data(event),
        group_id=group.id,
    )
    await ctx.publish(
        GroupChanged(
            **ctx.stamp(event), group_id=group.id, chat_id=group.chat_id, change="dismiss"
        )
    )
