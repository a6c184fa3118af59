"""``change_contact``: members join, change or leave the company's directory.

The event names the fields that changed; the staff row takes them at once and a refresh
fetches the rest. A deleted member keeps the row (their customers' history refers to it),
with status 5, WeCom's "left the company", and ``StaffLeft`` is published: the handover of
their customers, groups, tasks and enrollments (``sop.staff``) is planned in this transaction.
"""

from __future__ import annotations

from bot.processing import refresh_queue
from bot.processing.context import HandlerContext
from bot.processing.messages import PlatformMessage
from bot.processing.records import StaffRecord
from bot.processing.router import Router
from bot.processing.subjects import Subjects
from bot.processing.wecom_events import ContactChangeEvent
from sop.events import StaffLeft
from store.models import Direction

router = Router("contact")
PREFIX = "wecom:event:change_contact"
LEFT_COMPANY = 5


CHANGES = ("create_user", "update_user", "delete_user")


def _names(_source: str, event: PlatformMessage, subjects: Subjects) -> None:
    if isinstance(event, ContactChangeEvent) and event.change_type in CHANGES:
        userid = event.new_userid or event.userid
        if userid:
            subjects.staff.add(userid)


@router.on(ContactChangeEvent, PREFIX, names=_names)
async def directory_changed(ctx: HandlerContext, event: ContactChangeEvent) -> None:
    userid = event.new_userid or event.userid
    leaver: StaffRecord | None = None
    if event.change_type in CHANGES and userid:
        staff = await ctx.people.staff(userid)
        if event.change_type == "delete_user":
            leaver = staff if staff.status != LEFT_COMPANY else None
            staff.status = LEFT_COMPANY
        else:
            staff.name = event.name or staff.name
            staff.position = event.position or staff.position
            staff.status = event.status if event.status is not None else staff.status
            if event.departments:
                staff.departments = list(event.departments)
            staff.main_department = event.main_department or staff.main_department
            await ctx.refresh(refresh_queue.STAFF, userid)
    ctx.record(
        event,
        direction=Direction.EVENT,
        kind="directory_changed",
        summary=event.summary(),
        data={"change_type": event.change_type, "userid": event.userid, "raw": dict(event.raw)},
        staff_userid=userid,
    )
    if leaver is not None:
        await ctx.publish(
            StaffLeft(
                **ctx.stamp(event),
                staff_userid=leaver.userid,
                departments=tuple(leaver.departments or ()),
                main_department=leaver.main_department,
            )
        )
