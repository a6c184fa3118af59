"""Start, pause, resume and cancel a campaign's run; its progress by state.

Pausing holds the run's outbox rows that are still ``pending`` by moving their ``due_at`` to
:data:`HELD` (year 9000): the sender only claims due rows, so no new send starts after the
pause commits (rows already being sent finish). Cancelled rows could never come back, which is
why pause does not cancel. Resuming spreads the held rows again from now, with the campaign's
throttle and quiet hours (not all at once), and lets the fan-out go on from its cursor.
Cancelling cancels the pending rows (held ones included) and the open tasks of a
``staff_task`` run. A mass message WeCom already accepted reaches nobody until the staff
member sends it, so cancelling a mass run also asks for its unfinished mass jobs to be
withdrawn (``withdraw_requested_at``, due for a poll now): sop cannot call WeCom, the bot's
result collector calls ``cancel_groupmsg_send`` unless the staff member has sent it. What was
sent stays sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sop.campaigns.model import MASS_CHANNELS, Campaign
from sop.campaigns.slots import Slots
from store.models import (
    CampaignRecipient,
    CampaignRun,
    MassJob,
    OutboxRow,
    OutboxState,
    RunState,
    Task,
    TaskState,
)

HELD = datetime(9000, 1, 1, tzinfo=UTC)
ACTIVE = (RunState.PLANNED, RunState.RUNNING, RunState.PAUSED)


class CampaignStateError(Exception):
    """An operation the run's state does not allow, with what to do instead."""


def digest(campaign: Campaign) -> str:
    text = json.dumps(campaign.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


async def latest_run(session: AsyncSession, name: str) -> CampaignRun | None:
    return await session.scalar(
        select(CampaignRun)
        .where(CampaignRun.campaign == name)
        .order_by(CampaignRun.number.desc())
        .limit(1)
    )


def refuse_while_active(name: str, last: CampaignRun | None) -> None:
    """:class:`CampaignStateError` when ``last`` (the latest run) is not finished."""
    if last is not None and last.state in ACTIVE:
        raise CampaignStateError(
            f"campaign {name!r}: run {last.number} is {last.state.value};"
            " resume, pause or cancel it before starting another"
        )


async def create_run(
    session: AsyncSession,
    campaign: Campaign,
    *,
    now: datetime,
    zone_default: str,
    fire_time: datetime | None = None,
) -> CampaignRun:
    """A new ``running`` run (fan it out with :class:`~sop.campaigns.fanout.Fanout`).

    Refused while another run of the campaign is not finished: resume or cancel it first.
    """
    last = await latest_run(session, campaign.name)
    refuse_while_active(campaign.name, last)
    start = campaign.schedule.start_at(now, zone_default)
    run = CampaignRun(
        campaign=campaign.name,
        number=(last.number + 1) if last is not None else 1,
        digest=digest(campaign),
        definition=campaign.model_dump(mode="json"),
        channel=campaign.channel,
        state=RunState.RUNNING,
        fire_time=fire_time or now,
        next_slot_at=start,
        counts={},
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    await session.flush()
    return run


def _keys(run_id: int) -> Select[str | None]:
    """The outbox keys of a run's rows (the unique index on the key finds each row)."""
    return select(CampaignRecipient.outbox_key).where(
        CampaignRecipient.run_id == run_id, CampaignRecipient.outbox_key.is_not(None)
    )


async def _locked(session: AsyncSession, name: str) -> CampaignRun:
    last = await latest_run(session, name)
    if last is None:
        raise CampaignStateError(f"campaign {name!r} has no run: start it first")
    run = await session.scalar(
        select(CampaignRun).where(CampaignRun.id == last.id).with_for_update()
    )
    assert run is not None
    return run


async def pause(session: AsyncSession, name: str, *, now: datetime) -> tuple[CampaignRun, int]:
    """Hold the latest run's pending rows; the run and how many rows were held."""
    run = await _locked(session, name)
    if run.state != RunState.RUNNING:
        raise CampaignStateError(f"campaign {name!r} run {run.number} is {run.state.value}")
    held = await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.idempotency_key.in_(_keys(run.id)),
            OutboxRow.state == OutboxState.PENDING,
        )
        .values(due_at=HELD, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    run.state, run.paused_at, run.updated_at = RunState.PAUSED, now, now
    return run, int(held.rowcount or 0)  # type: ignore[attr-defined]


async def resume(
    session: AsyncSession, name: str, *, now: datetime, zone: ZoneInfo
) -> tuple[CampaignRun, int]:
    """Spread the held rows again from now and let the fan-out continue."""
    run = await _locked(session, name)
    if run.state != RunState.PAUSED:
        raise CampaignStateError(f"campaign {name!r} run {run.number} is {run.state.value}")
    campaign = Campaign.model_validate(run.definition)
    slots = Slots(run, campaign, zone)
    slots.restart(max(now, campaign.schedule.start_at(now, zone.key)))
    ids = (
        await session.scalars(
            select(OutboxRow.id)
            .where(
                OutboxRow.idempotency_key.in_(_keys(run.id)),
                OutboxRow.state == OutboxState.PENDING,
                OutboxRow.due_at >= HELD,
            )
            .order_by(OutboxRow.id)
        )
    ).all()
    if ids:
        await session.execute(
            update(OutboxRow),
            [{"id": row_id, "due_at": slots.take(), "updated_at": now} for row_id in ids],
        )
    run.state, run.paused_at, run.updated_at = RunState.RUNNING, None, now
    return run, len(ids)


@dataclass(frozen=True)
class Cancelled:
    """A cancelled run: its pending rows cancelled, its accepted mass messages to withdraw."""

    run: CampaignRun
    rows: int
    withdrawals: int


async def cancel(session: AsyncSession, name: str, *, now: datetime) -> Cancelled:
    """Cancel the latest run's pending rows (and open tasks); ask to withdraw its mass jobs."""
    run = await _locked(session, name)
    if run.state not in ACTIVE:
        raise CampaignStateError(f"campaign {name!r} run {run.number} is {run.state.value}")
    cancelled = await session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.idempotency_key.in_(_keys(run.id)),
            OutboxRow.state == OutboxState.PENDING,
        )
        .values(
            state=OutboxState.CANCELLED,
            last_error=f"campaign {name} run {run.number} cancelled by an operator",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    withdrawals = 0
    if run.channel in MASS_CHANNELS:
        withdrawals = await _request_withdrawals(session, run.id, now=now)
    if run.channel == "staff_task":
        await session.execute(
            update(Task)
            .where(Task.origin == f"campaign:{name}:{run.id}", Task.state == TaskState.OPEN)
            .values(state=TaskState.SKIPPED, closed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    run.state, run.finished_at, run.updated_at = RunState.CANCELLED, now, now
    rows = int(cancelled.rowcount or 0)  # type: ignore[attr-defined]
    return Cancelled(run, rows, withdrawals)


async def _request_withdrawals(session: AsyncSession, run_id: int, *, now: datetime) -> int:
    """Mark the run's unfinished mass jobs for withdrawal, due now; how many were marked."""
    rows = select(OutboxRow.id).where(OutboxRow.idempotency_key.in_(_keys(run_id)))
    marked = await session.execute(
        update(MassJob)
        .where(MassJob.outbox_id.in_(rows), MassJob.finished_at.is_(None))
        .values(withdraw_requested_at=now, next_poll_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(marked.rowcount or 0)  # type: ignore[attr-defined]


async def withdrawal_wanted(session: AsyncSession, outbox_key: str) -> bool:
    """Whether a mass message WeCom just accepted for outbox row ``outbox_key`` belongs to a
    cancelled campaign run, so its job must be withdrawn like those the cancel marked.

    A row being sent while the run is cancelled is not ``pending`` (the cancel leaves it) and
    has no job yet (the cancel cannot mark it). The run row is read ``FOR SHARE``: a cancel
    holds it ``FOR UPDATE``, so either the cancel commits first and is seen here, or this
    transaction's job is committed before the cancel's update looks for jobs.
    """
    prefix, _, rest = outbox_key.partition(":")
    run_id = rest.partition(":")[0]
    if prefix != "campaign" or not run_id.isdigit():  # keys: sop.campaigns.fanout
        return False
    state = await session.scalar(
        select(CampaignRun.state).where(CampaignRun.id == int(run_id)).with_for_update(read=True)
    )
    return state == RunState.CANCELLED


@dataclass
class Progress:
    """A run and its outbox rows by state (``held``: pending while paused)."""

    run: CampaignRun
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def settled_rows(self) -> int:
        return sum(n for s, n in self.rows.items() if s not in ("pending", "held", "sending"))


async def progress(session: AsyncSession, name: str, *, now: datetime) -> Progress | None:
    """The latest run's progress; a running run whose rows all settled becomes ``done``."""
    run = await latest_run(session, name)
    if run is None:
        return None
    held = (OutboxRow.state == OutboxState.PENDING) & (OutboxRow.due_at >= HELD)
    counts = (
        await session.execute(
            select(OutboxRow.state, held, func.count())
            .where(OutboxRow.idempotency_key.in_(_keys(run.id)))
            .group_by(OutboxRow.state, held)
        )
    ).all()
    rows: dict[str, int] = {}
    for state, is_held, count in counts:
        key = "held" if is_held else str(state)
        rows[key] = rows.get(key, 0) + int(count)
    result = Progress(run, rows)
    unsettled = rows.get("pending", 0) + rows.get("held", 0) + rows.get("sending", 0)
    if run.state == RunState.RUNNING and run.fanned_out_at is not None and not unsettled:
        run.state, run.finished_at, run.updated_at = RunState.DONE, now, now
    return result
