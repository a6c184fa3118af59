"""``change_external_tag``: the corp tag library changed; re-read it.

One refresh request covers the whole library, so a burst of tag edits costs one fetch.
A deletion is applied at once (a deleted tag can no longer be fetched to learn it is gone).
"""

from __future__ import annotations

from sqlalchemy import update

from bot.processing import refresh_queue
from bot.processing.context import HandlerContext
from bot.processing.router import Router
from bot.processing.wecom_events import ExternalTagEvent
from store.models import Direction, Tag

router = Router("external_tag")


@router.on(ExternalTagEvent, "wecom:event:change_external_tag")
async def tag_library_changed(ctx: HandlerContext, event: ExternalTagEvent) -> None:
    if event.change_type == "delete" and event.tag_id:
        await ctx.savepoint()
        column = Tag.group_platform_id if event.tag_type == "tag_group" else Tag.platform_id
        await ctx.session.execute(
            update(Tag)
            .where(column == event.tag_id, Tag.deleted_at.is_(None))
            .values(deleted_at=ctx.occurred_at(event))
            .execution_options(synchronize_session="fetch")
        )
    await ctx.refresh(refresh_queue.TAG, refresh_queue.ALL_TAGS)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="tag_library_changed",
        summary=event.summary(),
        data={
            "change_type": event.change_type,
            "id": event.tag_id,
            "tag_type": event.tag_type,
            "strategy_id": event.strategy_id,
        },
    )
