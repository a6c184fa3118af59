"""A staff member's directory entry (``user/get``)."""

from __future__ import annotations

from typing import Any

from bot.processing import refresh_queue
from bot.processing.directory import DirectoryApi
from bot.processing.people import staff_by_userid
from bot.processing.sync.base import Sync, SyncContext


async def apply_staff(ctx: SyncContext, userid: str, user: dict[str, Any]) -> None:
    staff = await staff_by_userid(ctx.session, userid, ctx.now)
    staff.name = user.get("name") or staff.name
    staff.position = user.get("position") or staff.position
    departments = user.get("department")
    if isinstance(departments, list):
        staff.departments = [int(d) for d in departments]
    staff.main_department = user.get("main_department") or staff.main_department
    staff.status = user.get("status", staff.status)
    staff.synced_at = ctx.now


async def _fetch(directory: DirectoryApi, userid: str) -> dict[str, Any]:
    return await directory.get_user(userid)


SYNC = Sync(refresh_queue.STAFF, _fetch, apply_staff)
