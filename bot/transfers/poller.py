"""The transfer poller: works recorded transfer jobs through the platform until they are final.

One pass (:meth:`TransferPoller.run_once`): the due running jobs (``next_check_at`` passed)
are taken with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes can
run pollers), then, per job: pending customers are submitted in batches of 100
(``transfer_customer``: each becomes ``waiting`` or fails with its errcode), pending groups
are moved in batches of 100 (``groupchat/transfer``: final at once), and waiting customers
are looked up in ``transfer_result`` (all pages): status 1 moves the follow to the successor,
3 and 4 fail with the reason, 2 waits on. The job is looked at again after ``poll_every``
(or at the earliest takeover time the platform announced, if sooner); a transient error
brings it back after a backoff. A job whose items are all final is closed.

Time comes from the injected clock only, so a test drives a whole handover, 24-hour wait
included, with a manual clock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.transfers import calls
from bot.wecom import WecomApiError, WecomClient
from sop.clock import Clock
from sop.loops import run_until_stopped
from sop.staff import audit, results
from sop.staff.settings import StaffSettings
from store.models import TransferItem, TransferJob, TransferJobState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollerSettings:
    poll_every: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(days=3)
    #: Jobs taken per pass; each may hold thousands of customers.
    batch_size: int = 20
    #: How long a taken job stays ours while its calls are made.
    lease: timedelta = timedelta(minutes=10)
    #: The first wait after a transient error; doubles per attempt, up to ``poll_every``.
    retry_after: timedelta = timedelta(minutes=1)
    idle_seconds: float = 30.0

    @classmethod
    def from_staff(cls, staff: StaffSettings) -> PollerSettings:
        return cls(poll_every=staff.poll_every, give_up_after=staff.give_up_after)


@dataclass
class PollReport:
    jobs: int = 0
    finished: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class TransferPoller:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: WecomClient,
        clock: Clock,
        settings: PollerSettings | None = None,
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._clock = clock
        self.settings = settings or PollerSettings()

    async def run_forever(self, wake: asyncio.Event, stopping: asyncio.Event) -> None:
        """Pass after pass until ``stopping``; idle waits end early on ``wake``."""
        every = self.settings.idle_seconds
        await run_until_stopped(
            self.run_once, wake, stopping, idle_seconds=every, log=log, what="transfer poller"
        )

    async def run_once(self) -> PollReport:
        report = PollReport()
        for job_id in await self._take():
            report.jobs += 1
            try:
                if await self._work(job_id):
                    report.finished.append(job_id)
            except WecomApiError as exc:
                report.errors.append(f"job {job_id}: {exc}")
                await self._retry_later(job_id, exc)
        return report

    async def _take(self) -> list[int]:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            jobs = list(
                await session.scalars(
                    select(TransferJob)
                    .where(
                        TransferJob.state == TransferJobState.RUNNING,
                        TransferJob.next_check_at <= now,
                    )
                    .order_by(TransferJob.next_check_at, TransferJob.id)
                    .limit(self.settings.batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            for job in jobs:
                job.next_check_at = now + self.settings.lease
            return [job.id for job in jobs]

    async def _work(self, job_id: int) -> bool:
        """Submit, poll, reschedule; True when the job finished."""
        async with self._sessions() as session:
            job = await session.get(TransferJob, job_id)
            assert job is not None
            items = list(
                await session.scalars(
                    select(TransferItem)
                    .where(TransferItem.job_id == job_id)
                    .order_by(TransferItem.id)
                )
            )
        parts = calls.split(items)
        args = (self._sessions, self._client, self._clock, job)
        if parts["customers"]:
            await calls.submit_customers(*args, parts["customers"])
        if parts["groups"]:
            await calls.submit_groups(*args, parts["groups"])
        if parts["waiting"]:
            await calls.poll_results(
                *args, parts["waiting"], give_up_after=self.settings.give_up_after
            )
        return await self._reschedule(job_id)

    async def _reschedule(self, job_id: int) -> bool:
        async with self._sessions.begin() as session:
            job = await session.get(TransferJob, job_id, with_for_update=True)
            assert job is not None
            now = self._clock.now()
            job.attempts, job.last_error, job.updated_at = 0, None, now
            if await results.finish_if_done(session, job, now=now):
                return True
            soonest = await session.scalar(
                select(TransferItem.takeover_at)
                .where(TransferItem.job_id == job_id, TransferItem.takeover_at > now)
                .order_by(TransferItem.takeover_at)
                .limit(1)
            )
            later = now + self.settings.poll_every
            job.next_check_at = min(later, soonest) if soonest is not None else later
            return False

    async def _retry_later(self, job_id: int, exc: WecomApiError) -> None:
        async with self._sessions.begin() as session:
            job = await session.get(TransferJob, job_id, with_for_update=True)
            assert job is not None
            now = self._clock.now()
            job.attempts += 1
            job.last_error = str(exc)
            wait = min(
                self.settings.retry_after * 2 ** min(job.attempts - 1, 20),
                self.settings.poll_every,
            )
            job.next_check_at = now + wait
            job.updated_at = now
            audit.record(
                session,
                at=now,
                actor=results.ACTOR,
                action="transfer_retry",
                subject=f"job:{job_id}",
                detail={
                    "error": str(exc),
                    "attempts": job.attempts,
                    "next": job.next_check_at.isoformat(),
                },
            )
