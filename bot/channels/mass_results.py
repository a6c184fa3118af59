"""The mass-message result collector: follows each accepted task until every recipient is settled.

One pass (:meth:`MassResultCollector.run_once`), per due job (``next_poll_at`` passed):

1. ``get_groupmsg_task`` (all pages): has the sending staff member sent it (status 2)?
2. if so, ``get_groupmsg_send_result`` (all pages): each recipient's status, 1 sent, 2 not a
   contact, 3 over the receiving limit; whoever is still 0 (or, for groups, not listed) was
   left out by the staff member and is ``not_confirmed``. The job is finished.
3. if not, and the horizon (default 3 days after acceptance) has passed, the task is cancelled
   (``cancel_groupmsg_send``, so a late send cannot contradict the record) and the pending
   recipients become ``not_confirmed``; before that, the staff member is reminded
   (``remind_groupmsg_send``) once every ``remind_every``, and the job is polled again later,
   backing off from ``first`` up to ``cap``.

A job whose campaign run was cancelled (``withdraw_requested_at``, due at once) is withdrawn
if the staff member has not sent it yet: ``cancel_groupmsg_send`` (once: ``cancelled_at``) and
the pending recipients become ``withdrawn`` (the task is read once more after the cancel: a
member who sent it in between keeps what they sent). If they had sent it, the results are
read as in step 2: what was sent stays sent. A refused cancel is the poll's error, retried
later.

When the results cannot be read (errors past the horizon plus ``grace``), the pending
recipients become ``failed`` with the error. Every settled recipient lands on its customer's
or group's timeline in the transaction that settles it. Several collectors may run: a job is
taken with a lease (its ``next_poll_at`` moves on) under ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.mass_store import Fate, pending_recipients, settle
from bot.wecom import WecomApiError, WecomClient
from sop.clock import Clock
from sop.delivery.retry import RetryPolicy
from sop.loops import run_until_stopped
from store.models import MassJob, MassStatus

log = logging.getLogger(__name__)

STAFF_SENT = 2
_STATUS = {1: MassStatus.SENT, 2: MassStatus.NOT_A_CONTACT, 3: MassStatus.LIMIT_REACHED}


@dataclass(frozen=True)
class CollectorSettings:
    horizon: timedelta = timedelta(days=3)
    #: After the horizon, how long unreadable results are retried before they become failed.
    grace: timedelta = timedelta(days=1)
    backoff: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            max_attempts=1_000_000, base=timedelta(minutes=5), cap=timedelta(hours=2)
        )
    )
    #: Remind a staff member who has not sent it yet, once per period (None: never).
    remind_every: timedelta | None = timedelta(days=1)
    batch_size: int = 50
    concurrency: int = 4
    lease: timedelta = timedelta(minutes=5)
    page_size: int = 1000
    idle_seconds: float = 30.0


@dataclass
class CollectReport:
    polled: int = 0
    finished: int = 0
    settled: dict[MassStatus, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class _Poll:
    """What one look at a job found."""

    staff_status: int | None = None
    staff_sent_at: datetime | None = None
    fates: dict[str, Fate] = field(default_factory=dict)
    reminded: bool = False
    cancelled: bool = False
    withdrawn: bool = False  # cancelled because the campaign run was
    errcode: int | None = None
    error: str = ""


class MassResultCollector:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: WecomClient,
        clock: Clock,
        settings: CollectorSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._clock = clock
        self.settings = settings or CollectorSettings()
        self._rng = rng or random.Random()

    async def run_forever(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Pass after pass until ``stopping`` is set; idle waits end early on ``wake``."""
        every = self.settings.idle_seconds
        await run_until_stopped(
            self._drain, wake, stopping, idle_seconds=every, log=log, what="mass result"
        )

    async def _drain(self) -> None:
        """Passes until one comes back short of a full batch."""
        while (await self.run_once()).polled >= self.settings.batch_size:
            pass

    async def run_once(self) -> CollectReport:
        """Poll every due job (at most ``batch_size``) once and record what was found."""
        report = CollectReport()
        jobs = await self._claim()
        report.polled = len(jobs)
        limit = asyncio.Semaphore(self.settings.concurrency)

        async def one(job: MassJob) -> None:
            async with limit:
                await self._collect(job, report)

        await asyncio.gather(*(one(job) for job in jobs))
        return report

    async def _claim(self) -> list[MassJob]:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            jobs = list(
                (
                    await session.scalars(
                        select(MassJob)
                        .where(MassJob.finished_at.is_(None), MassJob.next_poll_at <= now)
                        .order_by(MassJob.next_poll_at, MassJob.id)
                        .limit(self.settings.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            for job in jobs:
                job.next_poll_at = now + self.settings.lease
        return jobs

    async def _collect(self, job: MassJob, report: CollectReport) -> None:
        now = self._clock.now()
        poll = await self._look(job, now)
        horizon_at = job.accepted_at + self.settings.horizon
        fates = dict(poll.fates)
        done = poll.staff_status == STAFF_SENT and not poll.error
        if done:
            async with self._sessions() as session:
                left = await pending_recipients(session, job.id)
            fates.update({r: Fate(MassStatus.NOT_CONFIRMED) for r in left if r not in fates})
        elif poll.cancelled:
            done = True
            async with self._sessions() as session:
                left = await pending_recipients(session, job.id)
            ended = MassStatus.WITHDRAWN if poll.withdrawn else MassStatus.NOT_CONFIRMED
            fates.update({r: Fate(ended) for r in left})
        elif poll.error and now >= horizon_at + self.settings.grace:
            done = True
            async with self._sessions() as session:
                left = await pending_recipients(session, job.id)
            fates.update({r: Fate(MassStatus.FAILED) for r in left})
        if poll.error:
            report.errors.append(f"mass message {job.msgid}: {poll.error}")
        values: dict[str, Any] = {
            "polls": job.polls + 1,
            "updated_at": now,
            "last_errcode": poll.errcode,
            "last_error": poll.error or None,
            "reminders": job.reminders + int(poll.reminded),
        }
        if poll.staff_status is not None:
            values["staff_status"] = poll.staff_status
            values["staff_sent_at"] = poll.staff_sent_at
        if poll.cancelled:
            values["cancelled_at"] = now
        if done:
            values["finished_at"] = now
        else:
            later = now + self.settings.backoff.delay(job.polls + 1, self._rng)
            values["next_poll_at"] = min(later, horizon_at) if now < horizon_at else later
        async with self._sessions.begin() as session:
            counts = await settle(session, job, fates, now=now, error=poll.error)
            fresh = await session.get(MassJob, job.id, with_for_update=True)
            if fresh is not None:
                if not done and job.withdraw_requested_at is None and fresh.withdraw_requested_at:
                    values["next_poll_at"] = now  # cancelled during this poll: withdraw soon
                for name, value in values.items():
                    setattr(fresh, name, value)
        report.finished += int(done)
        for status, count in counts.items():
            report.settled[status] = report.settled.get(status, 0) + count

    async def _look(self, job: MassJob, now: datetime) -> _Poll:
        poll = _Poll()
        horizon = self.settings.horizon
        try:
            poll.staff_status, poll.staff_sent_at = await self._staff_task(job)
            if poll.staff_status == STAFF_SENT:
                poll.fates = await self._results(job)
            elif job.withdraw_requested_at is not None or now >= job.accepted_at + horizon:
                if job.cancelled_at is None:
                    await self._client.cancel_groupmsg_send(job.msgid)
                    # The member may have sent it between our read and the cancel: what was
                    # sent stays sent, so look once more before calling it withdrawn.
                    poll.staff_status, poll.staff_sent_at = await self._staff_task(job)
                    if poll.staff_status == STAFF_SENT:
                        poll.fates = await self._results(job)
                        return poll
                poll.cancelled = True
                poll.withdrawn = job.withdraw_requested_at is not None
            elif self._remind_due(job, now):
                poll.reminded = await self._remind(job)
        except WecomApiError as exc:
            poll.errcode, poll.error = exc.errcode, str(exc)
            log.warning("mass message %s: results not read: %s", job.msgid, exc)
        return poll

    def _remind_due(self, job: MassJob, now: datetime) -> bool:
        every = self.settings.remind_every
        return every is not None and now >= job.accepted_at + every * (job.reminders + 1)

    async def _remind(self, job: MassJob) -> bool:
        try:
            await self._client.remind_groupmsg_send(job.msgid)
        except WecomApiError as exc:  # a reminder is a courtesy: never worth failing a poll
            log.info("mass message %s: reminder refused: %s", job.msgid, exc)
            return False
        return True

    async def _staff_task(self, job: MassJob) -> tuple[int | None, datetime | None]:
        cursor = ""
        while True:
            page = await self._client.get_groupmsg_task(
                job.msgid, cursor=cursor, limit=self.settings.page_size
            )
            for task in page.get("task_list") or []:
                if task.get("userid") == job.sender:
                    sent_at = task.get("send_time")
                    when = _epoch(sent_at) if isinstance(sent_at, int) and sent_at else None
                    return int(task.get("status", 0)), when
            cursor = str(page.get("next_cursor") or "")
            if not cursor:
                return None, None

    async def _results(self, job: MassJob) -> dict[str, Fate]:
        key = "chat_id" if job.chat_type == "group" else "external_userid"
        fates: dict[str, Fate] = {}
        cursor = ""
        while True:
            page = await self._client.get_groupmsg_send_result(
                job.msgid, job.sender, cursor=cursor, limit=self.settings.page_size
            )
            for item in page.get("send_list") or []:
                recipient = str(item.get(key) or "")
                status = _STATUS.get(int(item.get("status", 0)), MassStatus.NOT_CONFIRMED)
                sent_at = item.get("send_time")
                when = _epoch(sent_at) if isinstance(sent_at, int) and sent_at else None
                if recipient:
                    fates[recipient] = Fate(status, when if status is MassStatus.SENT else None)
            cursor = str(page.get("next_cursor") or "")
            if not cursor:
                return fates


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
