"""``staff_task`` campaigns: a task and a button card per customer, to the owning staff member.

A personalised message to a WeCom customer is something a person sends: the staff member
gets the rendered script as a :class:`~store.models.Task` (origin ``campaign:<name>:<run>``)
and a card (:func:`sop.delivery.messages.task_card`, the one a playbook ``nudge`` sends).
The card row's key is the recipient's ``campaign:<run>:c<id>``, so the fan-out's
idempotency covers it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sop.campaigns.bulk import outbox_values
from sop.campaigns.eligibility import Decision
from sop.campaigns.model import Campaign, StaffTask
from sop.campaigns.slots import Slots
from sop.delivery.messages import STAFF_APP, task_card
from store.models import CampaignRun, Task, TaskState


async def task_rows(
    session: AsyncSession,
    *,
    run: CampaignRun,
    campaign: Campaign,
    included: list[Decision],
    scripts: list[str],
    keys: dict[str, str],
    slots: Slots,
    now: datetime,
) -> list[dict[str, Any]]:
    """Add the tasks (flushed: their ids go on the cards) and return the cards' rows."""
    spec = campaign.task or StaffTask()
    origin = f"campaign:{campaign.name}:{run.id}"
    tasks = []
    for decision, script in zip(included, scripts, strict=True):
        assert decision.owner is not None
        due_at = slots.take()
        tasks.append(
            Task(
                key=keys[decision.recipient],
                staff_userid=decision.owner,
                customer_id=decision.customer_id,
                origin=origin,
                title=spec.title,
                script=script,
                due_at=due_at + spec.due,
                state=TaskState.OPEN,
                history=[{"at": now.isoformat(), "state": "open", "by": origin}],
                created_at=now,
                updated_at=now,
            )
        )
    session.add_all(tasks)
    await session.flush()
    return [
        outbox_values(
            key=keys[decision.recipient],
            channel=STAFF_APP,
            recipient=task.staff_userid,
            payload=task_card(task.id, spec.title, task.script),
            due_at=task.due_at - spec.due,
            now=now,
            customer_id=decision.customer_id,
        )
        for decision, task in zip(included, tasks, strict=True)
    ]
