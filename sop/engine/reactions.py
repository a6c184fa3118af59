"""What events do to enrollments already running: a reply resumes a wait, an exit criterion
ends the enrollment, a goal is marked.

All of it runs inside the transaction that processes the event, and only moves enrollments
through :mod:`sop.engine.lifecycle`. Each enrollment is judged by the playbook version it
runs, not the latest one. Rows are locked (``FOR UPDATE`` on PostgreSQL) so a step the
runner executes at the same moment and this reaction take turns; a reply that comes after
the runner claimed the wait's timeout loses to the timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sop.engine import lifecycle
from sop.engine.catalog import Catalog
from sop.engine.matching import event_name, found_keyword, is_customer_message, tag_matches
from sop.events import CustomerRemoved, DomainEvent, MessageReceived, TagAdded
from sop.playbooks.model import Playbook
from sop.playbooks.timing import step_due_at
from store.models import (
    AgendaItem,
    AgendaKind,
    AgendaState,
    CustomerStaff,
    Enrollment,
    EnrollmentState,
    FollowState,
    StepRun,
    Waiting,
)


async def active_enrollments(session: AsyncSession, customer_id: int) -> Sequence[Enrollment]:
    """The customer's running enrollments, locked for this transaction."""
    result = await session.scalars(
        select(Enrollment)
        .where(Enrollment.customer_id == customer_id, Enrollment.state == EnrollmentState.ACTIVE)
        .order_by(Enrollment.id)
        .with_for_update()
    )
    return result.all()


async def apply_exits(
    session: AsyncSession, catalog: Catalog, event: DomainEvent, *, now: datetime
) -> list[Enrollment]:
    """End the enrollments whose exit criteria ``event`` meets; the ones ended."""
    customer_id = getattr(event, "customer_id", None)
    relevant = is_customer_message(event) or isinstance(event, TagAdded | CustomerRemoved)
    if customer_id is None or not relevant:
        return []
    ended: list[Enrollment] = []
    for enrollment in await active_enrollments(session, customer_id):
        playbook = await catalog.get_version(session, enrollment.version_id)
        reason = await _exit_reason(session, playbook, enrollment, event)
        if reason is not None:
            await lifecycle.end(
                session, enrollment, state=EnrollmentState.EXITED, reason=reason, now=now
            )
            ended.append(enrollment)
    return ended


async def _exit_reason(
    session: AsyncSession, playbook: Playbook, enrollment: Enrollment, event: DomainEvent
) -> str | None:
    criteria = playbook.exit
    if criteria.replied and is_customer_message(event):
        return "replied"
    if isinstance(event, TagAdded):
        for wanted in criteria.tags:
            if await tag_matches(session, wanted, event.tag_id, event.tag_name):
                return f"tagged {wanted}"
    if criteria.left and isinstance(event, CustomerRemoved):
        if enrollment.staff_userid in (None, event.staff_userid):
            return f"left ({event.removed_by} ended the relationship with {event.staff_userid})"
        if not await _still_followed(session, event.customer_id):
            return f"left (no staff member follows the customer since {event.staff_userid})"
    return None


async def _still_followed(session: AsyncSession, customer_id: int) -> bool:
    found = await session.scalar(
        select(CustomerStaff.id)
        .where(
            CustomerStaff.customer_id == customer_id,
            CustomerStaff.state == FollowState.ACTIVE,
        )
        .limit(1)
    )
    return found is not None


async def mark_goals(
    session: AsyncSession, catalog: Catalog, event: DomainEvent, *, now: datetime
) -> list[Enrollment]:
    """Mark ``goal_met_at`` (once) on the customer's enrollments whose goal ``event`` is,
    within the goal's ``within`` of enrolling (no ``within``: while the enrollment runs)."""
    customer_id = getattr(event, "customer_id", None)
    name = event_name(event)
    if customer_id is None or name is None:
        return []
    if isinstance(event, MessageReceived) and not is_customer_message(event):
        return []
    candidates = await session.scalars(
        select(Enrollment)
        .where(
            Enrollment.customer_id == customer_id,
            Enrollment.goal_met_at.is_(None),
            Enrollment.enrolled_at <= now,
        )
        .order_by(Enrollment.id)
    )
    met: list[Enrollment] = []
    for enrollment in candidates:
        playbook = await catalog.get_version(session, enrollment.version_id)
        goal = playbook.goal
        if goal is None:
            continue
        if goal.within is None and enrollment.state != EnrollmentState.ACTIVE:
            continue
        if goal.within is not None and now > enrollment.enrolled_at + goal.within:
            continue
        if goal.event is not None:
            hit = goal.event == name
        else:
            hit = isinstance(event, TagAdded) and await tag_matches(
                session, goal.tag or "", event.tag_id, event.tag_name
            )
        if hit:
            enrollment.goal_met_at = now
            enrollment.updated_at = now
            met.append(enrollment)
    return met


async def resume_replies(
    session: AsyncSession,
    catalog: Catalog,
    event: MessageReceived,
    *,
    now: datetime,
    zone_default: str,
) -> list[Enrollment]:
    """Resume the customer's enrollments waiting for a reply that ``event`` answers."""
    if not is_customer_message(event) or event.customer_id is None:
        return []
    resumed: list[Enrollment] = []
    for enrollment in await active_enrollments(session, event.customer_id):
        if enrollment.waiting != Waiting.REPLY:
            continue
        playbook = await catalog.get_version(session, enrollment.version_id)
        if await _resume(session, playbook, enrollment, event, now=now, zone_default=zone_default):
            resumed.append(enrollment)
    return resumed


async def _resume(
    session: AsyncSession,
    playbook: Playbook,
    enrollment: Enrollment,
    event: MessageReceived,
    *,
    now: datetime,
    zone_default: str,
) -> bool:
    timeout = await session.scalar(
        select(AgendaItem)
        .where(
            AgendaItem.enrollment_id == enrollment.id,
            AgendaItem.kind == AgendaKind.REPLY_TIMEOUT,
            AgendaItem.state == AgendaState.PENDING,
        )
        .order_by(AgendaItem.seq.desc())
        .limit(1)
    )
    if timeout is None:
        return False  # the runner has claimed the timeout: it decides
    wait = playbook.steps[timeout.step_index].wait_for_reply
    if wait is None:
        raise ValueError(
            f"enrollment {enrollment.id} waits for a reply at step {timeout.step_index + 1} of"
            f" {playbook.name}, which is not a wait_for_reply step (agenda row {timeout.id})"
        )
    keyword = found_keyword(wait.keywords, event.text) if wait.keywords else None
    if wait.keywords and keyword is None:
        return False
    cancelled = await session.execute(
        update(AgendaItem)
        .where(AgendaItem.id == timeout.id, AgendaItem.state == AgendaState.PENDING)
        .values(state=AgendaState.CANCELLED, updated_at=now)
        .execution_options(synchronize_session="fetch")
    )
    if not getattr(cancelled, "rowcount", 0):
        return False
    target = wait.on_reply or _next(playbook, timeout.step_index)
    enrollment.waiting = Waiting.NONE
    enrollment.updated_at = now
    session.add(
        StepRun(
            enrollment_id=enrollment.id,
            seq=timeout.seq,
            step_id=playbook.step_id(timeout.step_index),
            action="wait_for_reply",
            due_at=timeout.due_at,
            ran_at=now,
            outcome="reply",
            detail={
                "text": event.text,
                "keyword": keyword,
                "msg_id": event.msg_id,
                "inbox_id": event.inbox_id,
                "next": target,
            },
        )
    )
    if target == "stop":
        await lifecycle.end(
            session,
            enrollment,
            state=EnrollmentState.COMPLETED,
            reason=f"replied at step {playbook.step_id(timeout.step_index)}: stop",
            now=now,
        )
        return True
    index = playbook.step_index(target)
    step = playbook.steps[index]
    due = step_due_at(
        base=now,
        after=step.after,
        at=step.at,
        zone=playbook.zone(zone_default),
        quiet=playbook.quiet_hours,
    )
    lifecycle.schedule(session, enrollment, step_index=index, due_at=due, now=now)
    return True


def _next(playbook: Playbook, index: int) -> str:
    """The step after ``index``, or ``stop`` after the last one."""
    return playbook.step_id(index + 1) if index + 1 < len(playbook.steps) else "stop"
