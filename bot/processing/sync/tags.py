"""Tags: the corp tag library, and the tags a customer carries per staff member.

A customer's WeCom tags are diffed against the ``customer_tags`` rows with source ``wecom``:
new ones publish ``TagAdded``, vanished ones ``TagRemoved``. Tags the toolkit set itself
(playbooks, campaigns, by hand) are never removed by this diff.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.processing import refresh_queue
from bot.processing.directory import DirectoryApi
from bot.processing.messages import epoch_to_utc
from bot.processing.sync.base import Sync, SyncContext
from sop.events import TagAdded, TagRemoved
from store.models import Customer, CustomerTag, Tag, TagSource

#: Personal tags (type 2) have no platform id; they are kept under this group name.
PERSONAL_GROUP = "(personal)"


async def upsert_tag(
    ctx: SyncContext,
    *,
    platform_id: str | None,
    group_name: str,
    name: str,
    tag_type: int = 1,
    group_platform_id: str | None = None,
    order: int | None = None,
) -> Tag:
    """The tag row for a platform tag (by id) or a personal tag (by group and name)."""
    session = ctx.session
    tag = None
    if platform_id:
        by_id = select(Tag).where(Tag.platform_id == platform_id)
        tag = (await session.scalars(by_id)).one_or_none()
    by_name = select(Tag).where(Tag.group_name == group_name, Tag.name == name)
    holder = (await session.scalars(by_name)).one_or_none()
    if holder is not None and holder is not tag:
        if tag is None and (holder.platform_id is None or not platform_id):
            tag = holder  # adopt the local tag of that name
        else:  # the name moved to another tag: keep the old row, out of the way
            holder.name = f"{holder.name} ~{holder.platform_id or holder.id}"
            await session.flush()
    if tag is None:
        tag = Tag(platform_id=platform_id, group_name=group_name, name=name, created_at=ctx.now)
        session.add(tag)
    tag.platform_id = platform_id or tag.platform_id
    tag.group_name, tag.name, tag.type = group_name, name, tag_type
    tag.group_platform_id = group_platform_id or tag.group_platform_id
    tag.order = order if order is not None else tag.order
    tag.deleted_at = None
    await session.flush()
    return tag


async def _announce(
    ctx: SyncContext, customer: Customer, tag: Tag, staff_userid: str, *, added: bool
) -> None:
    """The timeline entry and the domain event of one tag put on or taken off a customer."""
    ctx.record(
        kind="tag_added" if added else "tag_removed",
        summary=f"{staff_userid} {'tagged' if added else 'untagged'} {tag.group_name}/{tag.name}",
        data={"tag_id": tag.id, "platform_id": tag.platform_id, "name": tag.name},
        customer_id=customer.id,
        staff_userid=staff_userid,
    )
    event = TagAdded if added else TagRemoved
    await ctx.publish(
        event(
            **ctx.stamp(),
            customer_id=customer.id,
            tag_id=tag.id,
            tag_name=tag.name,
            staff_userid=staff_userid,
        )
    )


async def sync_customer_tags(
    ctx: SyncContext, customer: Customer, staff_userid: str, entries: list[dict[str, Any]]
) -> int:
    """Make the ``wecom`` tags of this relationship match ``entries``; returns the changes."""
    wanted: dict[int, Tag] = {}
    for entry in entries:
        personal = entry.get("type") == 2 or not entry.get("tag_id")
        tag = await upsert_tag(
            ctx,
            platform_id=None if personal else str(entry["tag_id"]),
            group_name=str(entry.get("group_name") or (PERSONAL_GROUP if personal else "")),
            name=str(entry.get("tag_name") or ""),
            tag_type=int(entry.get("type") or 1),
        )
        wanted[tag.id] = tag
    rows = await ctx.session.scalars(
        select(CustomerTag).where(
            CustomerTag.customer_id == customer.id, CustomerTag.staff_userid == staff_userid
        )
    )
    have = {row.tag_id: row for row in rows}
    changes = 0
    for tag_id, tag in wanted.items():
        if tag_id in have:
            continue
        ctx.session.add(
            CustomerTag(
                customer_id=customer.id,
                tag_id=tag_id,
                staff_userid=staff_userid,
                source=TagSource.WECOM,
                added_at=ctx.now,
            )
        )
        changes += 1
        await _announce(ctx, customer, tag, staff_userid, added=True)
    for tag_id, row in have.items():
        if tag_id in wanted or row.source is not TagSource.WECOM:
            continue
        tag = await ctx.session.get_one(Tag, tag_id)
        await ctx.session.delete(row)
        changes += 1
        await _announce(ctx, customer, tag, staff_userid, added=False)
    return changes


async def apply_library(ctx: SyncContext, key: str, groups: list[dict[str, Any]]) -> None:
    """Mirror the corp tag library; corp tags it no longer lists are marked deleted."""
    live: set[str] = set()
    for group in groups:
        for entry in group.get("tag") or []:
            if entry.get("deleted"):
                continue
            tag = await upsert_tag(
                ctx,
                platform_id=str(entry["id"]),
                group_name=str(group.get("group_name") or ""),
                name=str(entry.get("name") or ""),
                group_platform_id=group.get("group_id"),
                order=entry.get("order"),
            )
            if tag.created_at == ctx.now and epoch_to_utc(entry.get("create_time")):
                tag.created_at = epoch_to_utc(entry.get("create_time")) or ctx.now
            live.add(str(entry["id"]))
    if key != refresh_queue.ALL_TAGS:
        return
    stale = await ctx.session.scalars(
        select(Tag).where(Tag.platform_id.is_not(None), Tag.deleted_at.is_(None), Tag.type != 2)
    )
    for tag in stale:
        if tag.platform_id not in live:
            tag.deleted_at = ctx.now


async def _fetch_library(directory: DirectoryApi, key: str) -> list[dict[str, Any]]:
    if key == refresh_queue.ALL_TAGS:
        return await directory.get_corp_tags()
    return await directory.get_corp_tags(tag_ids=[key])


SYNC = Sync(refresh_queue.TAG, _fetch_library, apply_library)
