"""A member left the company: plan the handover to their configured successor at once.

Runs inside the transaction that processes the ``change_contact`` callback, so the job,
the reassigned tasks and the moved enrollments commit together with the member's status
(or not at all). The platform calls happen later, in the poller. Without a configured
successor nothing moves; the audit log says so and an operator runs
``scrm staff transfer FROM TO``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from sop.clock import Clock
from sop.events import EventBus, StaffLeft
from sop.staff import audit
from sop.staff.plan import plan_transfer
from sop.staff.settings import StaffSettings
from sop.staff.transfer import record_transfer
from store.models import TransferMode

ACTOR = "departure"


def departure_key(event: StaffLeft) -> str:
    """One handover per departure callback; a reprocessed callback finds its job."""
    cause = f"inbox:{event.inbox_id}" if event.inbox_id is not None else event.source
    return f"departure:{event.staff_userid}:{cause}"


async def on_staff_left(
    session: AsyncSession, event: StaffLeft, settings: StaffSettings, clock: Clock
) -> None:
    now = clock.now()
    successor = settings.successor.for_member(event.main_department, event.departments)
    if successor is None or successor == event.staff_userid:
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="no_successor",
            subject=f"staff:{event.staff_userid}",
            detail={
                "departments": list(event.departments),
                "fix": "set staff.successor.default (or by_department) in config.yaml, or run"
                f" `scrm staff transfer {event.staff_userid} SUCCESSOR`",
            },
        )
        return
    plan = await plan_transfer(session, event.staff_userid, successor, mode=TransferMode.RESIGNED)
    await record_transfer(
        session,
        plan,
        key=departure_key(event),
        actor=ACTOR,
        reason="left the company",
        notify=settings.notify_successor,
        now=now,
    )


def subscribe_departures(bus: EventBus, settings: StaffSettings, clock: Clock) -> None:
    """Plan a handover on every ``StaffLeft`` (wired by the composition root)."""

    async def subscriber(session: AsyncSession, event: StaffLeft) -> None:
        await on_staff_left(session, event, settings, clock)

    bus.subscribe(StaffLeft, subscriber)
