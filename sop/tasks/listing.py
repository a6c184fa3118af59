"""Tasks as lines of text for staff messages: replies, reminders, escalations, digests.

Every message that lists tasks names them the same way (``#42 回访 (李女士), due 11-24 14:00``)
with local times in the configured zone, so a staff member can answer any of them with
``done 42``. App text messages take at most 2048 bytes: :func:`fit` cuts a listing to that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Customer, CustomerGroup, Task

#: message/send takes at most 2048 bytes of text content.
TEXT_BYTES = 2048


async def subjects(session: AsyncSession, tasks: Iterable[Task]) -> dict[int, str]:
    """Task id -> whom it is about (the customer's or group's name), for the tasks that say."""
    tasks = list(tasks)
    customer_ids = {t.customer_id for t in tasks if t.customer_id is not None}
    group_ids = {t.group_id for t in tasks if t.group_id is not None}
    customers: dict[int, str] = {}
    groups: dict[int, str] = {}
    if customer_ids:
        rows = await session.execute(
            select(Customer.id, Customer.name, Customer.external_userid).where(
                Customer.id.in_(customer_ids)
            )
        )
        customers = {cid: name or external or f"#{cid}" for cid, name, external in rows.all()}
    if group_ids:
        named = await session.execute(
            select(CustomerGroup.id, CustomerGroup.name).where(CustomerGroup.id.in_(group_ids))
        )
        groups = {gid: name or f"group {gid}" for gid, name in named.all()}
    found: dict[int, str] = {}
    for task in tasks:
        if task.customer_id is not None and task.customer_id in customers:
            found[task.id] = customers[task.customer_id]
        elif task.group_id is not None and task.group_id in groups:
            found[task.id] = groups[task.group_id]
    return found


def local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%m-%d %H:%M")


def task_line(task: Task, subject: str | None, zone: ZoneInfo) -> str:
    about = f" ({subject})" if subject else ""
    return f"#{task.id} {task.title}{about}, due {local(task.due_at, zone)}"


def section(title: str, lines: Sequence[str], limit: int) -> list[str]:
    """A heading and at most ``limit`` lines, with "... and N more"."""
    if not lines:
        return []
    shown = [f"{title} ({len(lines)})", *(f"• {line}" for line in lines[:limit])]
    if len(lines) > limit:
        shown.append(f"  … and {len(lines) - limit} more")
    return shown


def fit(lines: Sequence[str], limit: int = TEXT_BYTES) -> str:
    """Join ``lines``; drop the last ones (saying so) until the text fits in ``limit`` bytes."""
    text = "\n".join(lines)
    if len(text.encode()) <= limit:
        return text
    kept = list(lines)
    while kept:
        kept.pop()
        candidate = "\n".join([*kept, "… (cut: reply `tasks` for the whole list)"])
        if len(candidate.encode()) <= limit:
            return candidate
    return text.encode()[: limit - 3].decode(errors="ignore") + "…"
