"""Collect what became of each recipient of a run: delivery outcome, reply and goal.

The facts are already in other tables; :func:`collect` copies them onto the run's
``campaign_recipients`` rows so a report is one grouped query:

- ``outcome``: for mass channels the recipient's :class:`~store.models.MassRecipient` status
  (matched by the row's outbox id and the recipient's address: ``sent``, ``not_a_contact``,
  ``limit_reached``, ``not_confirmed``, ``failed``, ``withdrawn`` when the run was cancelled
  before the staff member sent it, or ``pending`` while they have not sent it); before WeCom
  accepted the task, the outbox row's state (``cancelled`` for rows a cancel stopped). For
  ``mp`` and ``staff_task`` the outbox row's state (for ``staff_task`` that is the card to
  the staff member).
- ``reached_at``: when the message reached the recipient (the mass send time, the outbox
  ``sent_at``; for ``staff_task`` when the staff member marked the task done).
- ``replied_at``: the customer's first inbound message after ``reached_at``, if it came within
  the attribution window (the goal's ``within``, else :data:`DEFAULT_WINDOW`).
- ``converted_at``: the goal met in the window: the reply, the tag put on the customer, or
  the first timeline entry of the event.

Each pass recomputes these from the facts (so collecting twice changes nothing, and a late
mass result corrects an earlier ``pending``), in keyset chunks of :data:`CHUNK` recipients:
a few SELECTs and two executemany UPDATEs of the rows that changed per chunk.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sop.campaigns.model import Campaign, CampaignGoal
from store.models import (
    CampaignRecipient,
    CampaignRun,
    CustomerTag,
    Direction,
    Interaction,
    MassRecipient,
    MassStatus,
    OutboxRow,
    OutboxState,
    Tag,
    Task,
    TaskState,
)

#: The attribution window of a campaign without a goal (the goal's default ``within``).
DEFAULT_WINDOW = CampaignGoal.model_fields["within"].default
#: Recipients per chunk (one SELECT of each kind and one UPDATE).
CHUNK = 1000
#: Timeline kinds of the goal events (the event name where the kind is the same).
EVENT_KINDS = {"message_received": "message"}
#: Outcome of a mass recipient whose task WeCom accepted before its result rows exist.
ACCEPTED = "accepted"


class RunNotFoundError(LookupError):
    """No campaign run with the id given."""


async def collect(session: AsyncSession, run_id: int, *, now: datetime) -> int:
    """Bring the outcomes of run ``run_id``'s recipients up to date; how many rows changed.

    Idempotent: a second pass with nothing new changes nothing. Stamps ``collected_at``.
    """
    run = await session.get(CampaignRun, run_id)
    if run is None:
        raise RunNotFoundError(
            f"campaign run id {run_id} does not exist: see `scrm campaign status NAME`"
        )
    campaign = Campaign.model_validate(run.definition)
    window = campaign.goal.within if campaign.goal is not None else DEFAULT_WINDOW
    changed = 0
    after = 0
    while True:
        rows = (await session.execute(_facts(run_id, after))).all()
        if not rows:
            break
        after = rows[-1].id
        current = {row.id: _delivery(row, campaign) for row in rows}
        # reached_at first: the reply and goal queries compare with the stored value.
        delivered = [
            {"id": row.id, "outcome": current[row.id][0], "reached_at": current[row.id][1]}
            for row in rows
            if current[row.id] != (row.outcome, row.reached_at)
        ]
        if delivered:
            await session.execute(update(CampaignRecipient), delivered)
        reached = {rid: values[1] for rid, values in current.items() if values[1] is not None}
        replies = await _first_after(session, reached, _reply_filter())
        goals = await _goal_times(session, campaign, reached, replies)
        responses = []
        for row in rows:
            reached_at = current[row.id][1]
            replied_at = _within(reached_at, replies.get(row.id), window)
            converted_at = _within(reached_at, goals.get(row.id), window)
            if (replied_at, converted_at) != (row.replied_at, row.converted_at):
                responses.append(
                    {"id": row.id, "replied_at": replied_at, "converted_at": converted_at}
                )
        if responses:
            await session.execute(update(CampaignRecipient), responses)
        changed += len({u["id"] for u in [*delivered, *responses]})
    run.collected_at = now
    return changed


def _facts(run_id: int, after: int) -> Any:
    """One chunk of included recipients with their outbox row, mass result and task."""
    recipient = CampaignRecipient
    return (
        select(
            recipient.id,
            recipient.outcome,
            recipient.reached_at,
            recipient.replied_at,
            recipient.converted_at,
            OutboxRow.state.label("outbox_state"),
            OutboxRow.sent_at.label("outbox_sent_at"),
            MassRecipient.status.label("mass_status"),
            MassRecipient.send_time.label("mass_sent_at"),
            MassRecipient.updated_at.label("mass_updated_at"),
            Task.state.label("task_state"),
            Task.closed_at.label("task_closed_at"),
        )
        .outerjoin(OutboxRow, OutboxRow.idempotency_key == recipient.outbox_key)
        # Only mass rows have mass recipients, only staff_task keys name tasks.
        .outerjoin(
            MassRecipient,
            and_(
                MassRecipient.outbox_id == OutboxRow.id,
                MassRecipient.recipient == recipient.address,
            ),
        )
        .outerjoin(Task, Task.key == recipient.outbox_key)
        .where(
            recipient.run_id == run_id,
            recipient.id > after,
            recipient.excluded.is_(None),
            recipient.outbox_key.is_not(None),
        )
        .order_by(recipient.id)
        .limit(CHUNK)
    )


def _delivery(row: Any, campaign: Campaign) -> tuple[str | None, datetime | None]:
    """(outcome, reached_at) of one recipient from its facts."""
    state: OutboxState | None = row.outbox_state
    if campaign.is_mass:
        if row.mass_status is not None:
            status = MassStatus(row.mass_status)
            sent = status == MassStatus.SENT
            return status.value, (row.mass_sent_at or row.mass_updated_at) if sent else None
        if state == OutboxState.SENT:
            return ACCEPTED, None
        return (state.value if state is not None else None), None
    outcome = state.value if state is not None else None
    if campaign.channel == "staff_task":
        done = row.task_state == TaskState.DONE
        return outcome, row.task_closed_at if done else None
    return outcome, row.outbox_sent_at if state == OutboxState.SENT else None


def _within(start: datetime | None, at: datetime | None, window: timedelta) -> datetime | None:
    if start is None or at is None or at > start + window:
        return None
    return at


def _reply_filter() -> ColumnElement[bool]:
    return and_(Interaction.direction == Direction.INBOUND, Interaction.kind == "message")


async def _first_after(
    session: AsyncSession,
    reached: dict[int, datetime],
    condition: ColumnElement[bool],
    *,
    at: Any = Interaction.occurred_at,
    customer: Any = Interaction.customer_id,
) -> dict[int, datetime]:
    """The earliest ``at`` (a timeline entry by default) of each reached recipient's customer
    after it was reached, where ``condition`` holds. The earliest is enough: when it is
    outside the window, every later one is too."""
    if not reached:
        return {}
    recipient = CampaignRecipient
    rows = await session.execute(
        select(recipient.id, func.min(at))
        .select_from(recipient)
        .join(
            customer.table,
            and_(customer == recipient.customer_id, at > recipient.reached_at, condition),
        )
        .where(recipient.id.in_(list(reached)))
        .group_by(recipient.id)
    )
    return {rid: when for rid, when in rows.all() if when is not None}


async def _goal_times(
    session: AsyncSession,
    campaign: Campaign,
    reached: dict[int, datetime],
    replies: dict[int, datetime],
) -> dict[int, datetime]:
    goal = campaign.goal
    if goal is None or not reached:
        return {}
    if goal.reply:
        return replies
    if goal.event is not None:
        kind = EVENT_KINDS.get(goal.event, goal.event)
        return await _first_after(session, reached, Interaction.kind == kind)
    assert goal.tag is not None
    return await _first_after(
        session,
        reached,
        CustomerTag.tag_id.in_(select(Tag.id).where(_tag_named(goal.tag))),
        at=CustomerTag.added_at,
        customer=CustomerTag.customer_id,
    )


def _tag_named(wanted: str) -> ColumnElement[bool]:
    """``name``, or ``group/name`` to tell apart equal names in groups (as playbook goals)."""
    group, slash, name = wanted.rpartition("/")
    exact = Tag.name == wanted
    return or_(exact, and_(Tag.group_name == group, Tag.name == name)) if slash else exact
