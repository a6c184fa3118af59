"""Schedule triggers: take a fire once, then enroll its audience in resumable batches.

A fire (``cron`` or a ``date_field`` day) is taken through a unique ``CronFire(job,
fire_time)`` row: every process whose scheduler fires at that minute tries the insert and
only the first gets it. The fan-out then streams the audience in id order (keyset pages of
:func:`sop.audience.query.audience_select`), each batch in one transaction that enrolls its
customers and advances ``CronFire.cursor``; a crash loses at most the batch in flight, which
:func:`resume_unfinished` (or the next fire of the job) takes up again after the cursor.
Enrollment keys (``<playbook>:<customer>:<fire_time>``) make a repeated batch harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sop.audience.query import audience_select
from sop.engine.catalog import Catalog
from sop.engine.enroll import enroll
from sop.playbooks.model import Playbook
from sop.playbooks.timing import anniversary_on
from sop.settings import SopSettings
from store.models import CronFire, Customer

log = logging.getLogger(__name__)


#: Scheduler job ids of schedule playbooks start with this.
PLAYBOOK_JOB_PREFIX = "playbook:"


def job_name(playbook: Playbook) -> str:
    return f"{PLAYBOOK_JOB_PREFIX}{playbook.name}"


async def take_fire(
    session: AsyncSession, job: str, fire_time: datetime, *, now: datetime
) -> int | None:
    """Insert the fire's row; its id, or None when another process took it first."""
    values: dict[str, Any] = {"job": job, "fire_time": fire_time, "taken_at": now}
    insert = (
        postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    statement = (
        insert(CronFire)
        .values(values)
        .on_conflict_do_nothing(index_elements=["job", "fire_time"])
        .returning(CronFire.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


def is_anniversary(raw: object, today: date) -> bool:
    """Whether a ``MM-DD`` or ``YYYY-MM-DD`` field value falls on ``today`` (29 February
    on 28 February in other years); anything else is not a date and never matches."""
    text = str(raw).strip() if raw is not None else ""
    parts = text.split("-")
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return False
    try:
        return anniversary_on(today.year, int(parts[0]), int(parts[1])) == today
    except ValueError:
        return False


@dataclass
class FanOut:
    """Streams one fire's audience into enrollments."""

    sessions: async_sessionmaker[AsyncSession]
    catalog_provider: Callable[[], Catalog]
    settings: SopSettings
    zone_default: str
    now: Callable[[], datetime]
    batch_size: int = 500

    async def run(self, fire_id: int, playbook_name: str, fire_time: datetime) -> int:
        """Enroll the audience after the fire's cursor until done; how many enrolled."""
        enrolled = 0
        while True:
            async with self.sessions.begin() as session:
                fire = (
                    await session.execute(
                        select(CronFire)
                        .where(CronFire.id == fire_id, CronFire.finished_at.is_(None))
                        .with_for_update(skip_locked=True)
                    )
                ).scalar_one_or_none()
                if fire is None:
                    return enrolled  # finished, or another process is on it
                batch, made = await self._batch(session, playbook_name, fire, fire_time)
                enrolled += made
                if batch is None:
                    fire.finished_at = self.now()
                    return enrolled
                fire.cursor = batch

    async def _batch(
        self, session: AsyncSession, name: str, fire: CronFire, fire_time: datetime
    ) -> tuple[int | None, int]:
        catalog = self.catalog_provider()
        entry = catalog.get(name)
        if entry is None or not entry.playbook.enabled:
            return None, 0
        playbook = entry.playbook
        now = self.now()
        ids = list(
            (
                await session.scalars(
                    audience_select(
                        playbook.audience, now=now, after_id=fire.cursor, limit=self.batch_size
                    )
                )
            ).all()
        )
        if not ids:
            return None, 0
        schedule = playbook.trigger.schedule
        if schedule is not None and schedule.date_field is not None:
            today = fire_time.astimezone(playbook.zone(self.zone_default)).date()
            fields = await session.execute(
                select(Customer.id, Customer.custom_fields).where(Customer.id.in_(ids))
            )
            wanted = {
                cid
                for cid, values in fields.all()
                if is_anniversary((values or {}).get(schedule.date_field), today)
            }
            chosen = [cid for cid in ids if cid in wanted]
        else:
            chosen = ids
        made = 0
        for customer_id in chosen:
            result = await enroll(
                session,
                catalog=catalog,
                playbook_name=name,
                customer_id=customer_id,
                key=f"{name}:{customer_id}:{fire_time.isoformat()}",
                context={"fire_time": fire_time.isoformat()},
                now=now,
                settings=self.settings,
                zone_default=self.zone_default,
            )
            made += result.enrollment is not None
        return ids[-1], made


async def resume_unfinished(fanout: FanOut) -> int:
    """Finish the playbook fan-outs a stopped or crashed process left (fires taken, not
    finished). A fan-out another process is running is left to it (its fire row is locked
    while a batch runs); cron campaigns' fires are their starter's business, not ours."""
    async with fanout.sessions() as session:
        rows = (
            await session.execute(
                select(CronFire.id, CronFire.job, CronFire.fire_time).where(
                    CronFire.finished_at.is_(None),
                    CronFire.job.startswith(PLAYBOOK_JOB_PREFIX, autoescape=True),
                )
            )
        ).all()
    enrolled = 0
    for fire_id, job, fire_time in rows:
        name = job.removeprefix(PLAYBOOK_JOB_PREFIX)
        enrolled += await fanout.run(fire_id, name, fire_time)
    return enrolled
