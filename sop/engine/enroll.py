"""Enrolling a customer in a playbook: the one door every trigger goes through.

Event triggers (:mod:`sop.engine.subscribe`), cron and date triggers and manual enrollment
all call :func:`enroll`, so the rules hold whoever enrolls: the playbook is enabled,
marketing skips opted-out customers, the audience matches, the re-entry policy allows it,
a customer is in a playbook at most once at a time, and the occurrence's key enrolls once.
It runs inside the caller's transaction and never spoils it: a duplicate key is absorbed in
a SAVEPOINT. The answer says why nobody was enrolled, for previews and plans.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sop.audience.query import customer_matches
from sop.engine import lifecycle
from sop.engine.catalog import Catalog
from sop.engine.facts import enroll_lock_id
from sop.playbooks.model import Playbook
from sop.playbooks.timing import step_due_at
from sop.settings import SopSettings
from store.models import Customer, CustomerStaff, Enrollment, EnrollmentState, FollowState


class Skip(enum.StrEnum):
    """Why :func:`enroll` enrolled nobody."""

    UNKNOWN = "unknown playbook"
    DISABLED = "playbook disabled"
    NO_CUSTOMER = "customer not found"
    OPTED_OUT = "customer opted out of marketing"
    AUDIENCE = "not in the audience"
    ACTIVE = "already enrolled"
    REENTRY = "re-entry not allowed yet"
    DUPLICATE = "this occurrence already enrolled"


@dataclass(frozen=True)
class EnrollResult:
    """The enrollment made, or why there is none (``skip``, with ``detail``)."""

    enrollment: Enrollment | None = None
    skip: Skip | None = None
    detail: str = ""

    def __bool__(self) -> bool:
        return self.enrollment is not None


def _skipped(skip: Skip, detail: str = "") -> EnrollResult:
    return EnrollResult(skip=skip, detail=detail)


async def enroll(
    session: AsyncSession,
    *,
    catalog: Catalog,
    playbook_name: str,
    customer_id: int,
    group_id: int | None = None,
    staff_userid: str | None = None,
    key: str,
    context: dict[str, Any] | None = None,
    now: datetime,
    settings: SopSettings,
    zone_default: str,
) -> EnrollResult:
    """Enroll ``customer_id`` in the latest version of ``playbook_name`` under ``key``.

    ``key`` names the occurrence (``onboarding:c42:inbox:1001``, ``birthday:c42:2026-11-23``):
    the same key never enrolls twice. ``staff_userid`` defaults to the customer's owner (the
    active relationship added most recently). The first step is put on the agenda, due
    according to its timing, the playbook's zone (else ``zone_default``) and quiet hours.
    ``settings`` is the engine's configuration; the frequency cap in it is applied when a
    message is sent, not here, so a capped customer still enrolls.
    """
    entry = catalog.get(playbook_name)
    if entry is None:
        return _skipped(Skip.UNKNOWN, f"known: {', '.join(catalog.names()) or 'none'}")
    playbook = entry.playbook
    if not playbook.enabled:
        return _skipped(Skip.DISABLED)
    if await _key_taken(session, key):
        return _skipped(Skip.DUPLICATE, key)
    customer = await session.get(Customer, customer_id)
    if customer is None:
        return _skipped(Skip.NO_CUSTOMER, f"customer {customer_id}")
    if playbook.marketing and customer.opted_out_at is not None:
        return _skipped(Skip.OPTED_OUT, f"since {customer.opted_out_at.isoformat()}")
    if not playbook.audience.is_everyone and not await customer_matches(
        session, playbook.audience, customer_id, now=now
    ):
        return _skipped(Skip.AUDIENCE)
    await _serialize(session, customer_id)
    refusal = await _reentry_refusal(session, playbook, customer_id, now=now)
    if refusal is not None:
        return refusal
    staff = staff_userid or await owner_of(session, customer_id)
    enrollment = Enrollment(
        key=key,
        playbook=playbook.name,
        version_id=entry.version_id,
        customer_id=customer_id,
        group_id=group_id,
        staff_userid=staff,
        state=EnrollmentState.ACTIVE,
        context=dict(context or {}),
        seq=0,
        enrolled_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(enrollment)
            await session.flush()
            lifecycle.schedule(
                session,
                enrollment,
                step_index=0,
                due_at=first_due_at(playbook, now=now, zone_default=zone_default),
                now=now,
            )
            await session.flush()
    except IntegrityError:
        return _skipped(Skip.DUPLICATE, key)  # a concurrent transaction took the key
    return EnrollResult(enrollment=enrollment)


def first_due_at(playbook: Playbook, *, now: datetime, zone_default: str) -> datetime:
    """When step 0 falls due. A welcome message ignores quiet hours: it answers the
    customer's own action and its code expires within seconds."""
    step = playbook.steps[0]
    welcome = step.send is not None and step.send.channel == "welcome"
    return step_due_at(
        base=now,
        after=step.after,
        at=step.at,
        zone=playbook.zone(zone_default),
        quiet=None if welcome else playbook.quiet_hours,
    )


async def owner_of(session: AsyncSession, customer_id: int) -> str | None:
    """The staff member who owns the customer: the active relationship added last."""
    return await session.scalar(
        select(CustomerStaff.staff_userid)
        .where(
            CustomerStaff.customer_id == customer_id,
            CustomerStaff.state == FollowState.ACTIVE,
        )
        .order_by(CustomerStaff.added_at.desc().nulls_last(), CustomerStaff.id.desc())
        .limit(1)
    )


async def _key_taken(session: AsyncSession, key: str) -> bool:
    found = await session.scalar(select(Enrollment.id).where(Enrollment.key == key))
    return found is not None


async def _serialize(session: AsyncSession, customer_id: int) -> None:
    """Make concurrent enrollments of one customer take turns, so the one-active and
    re-entry checks cannot both pass in two transactions. SQLite writers already take turns
    (``BEGIN IMMEDIATE``); PostgreSQL takes a transaction-scoped advisory lock on the
    customer (the inbox processor takes those of a whole batch up front, in customer order:
    :mod:`sop.engine.facts`)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    lock_id = enroll_lock_id(customer_id)
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


async def _reentry_refusal(
    session: AsyncSession, playbook: Playbook, customer_id: int, *, now: datetime
) -> EnrollResult | None:
    mine = (Enrollment.playbook == playbook.name, Enrollment.customer_id == customer_id)
    active = await session.scalar(
        select(Enrollment.id).where(*mine, Enrollment.state == EnrollmentState.ACTIVE).limit(1)
    )
    if active is not None:
        return _skipped(Skip.ACTIVE, f"enrollment {active}")
    wait = playbook.reentry.value
    if wait is not None and not wait:
        return None  # always
    if wait is None:
        previous = await session.scalar(select(Enrollment.id).where(*mine).limit(1))
        return (
            None if previous is None else _skipped(Skip.REENTRY, f"never (enrollment {previous})")
        )
    last_end = await session.scalar(select(func.max(Enrollment.ended_at)).where(*mine))
    if last_end is not None and now < last_end + wait:
        return _skipped(Skip.REENTRY, f"allowed from {(last_end + wait).isoformat()}")
    return None
