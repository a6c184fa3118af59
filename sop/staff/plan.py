"""What a handover covers: the customers and groups a staff member has, and their open work.

Planning only reads, so ``scrm staff transfer --dry-run`` shows exactly what a real run
would record. A customer is covered while the member's relationship with them is active; a
group while the member owns it and it is not dismissed; a task while it is open or snoozed;
an enrollment while it is active and the member is its staff member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    Enrollment,
    EnrollmentState,
    FollowState,
    Staff,
    Task,
    TaskState,
    TransferMode,
)

#: change_contact's status of a member who left the company.
LEFT_COMPANY = 5
OPEN_TASK_STATES = (TaskState.OPEN, TaskState.SNOOZED)


@dataclass(frozen=True)
class PlannedCustomer:
    customer_id: int
    external_userid: str
    name: str | None


@dataclass(frozen=True)
class PlannedGroup:
    group_id: int
    chat_id: str
    name: str | None


@dataclass
class TransferPlan:
    handover_userid: str
    takeover_userid: str
    mode: TransferMode
    customers: list[PlannedCustomer] = field(default_factory=list)
    groups: list[PlannedGroup] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    enrollments: list[Enrollment] = field(default_factory=list)
    #: Customers asked for (``--customers``) that the member does not have.
    not_found: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "customers": len(self.customers),
            "groups": len(self.groups),
            "tasks": len(self.tasks),
            "enrollments": len(self.enrollments),
        }


async def mode_of(session: AsyncSession, handover_userid: str) -> TransferMode:
    """离职继承 for a member who left (status 5), else 在职继承."""
    status = await session.scalar(select(Staff.status).where(Staff.userid == handover_userid))
    return TransferMode.RESIGNED if status == LEFT_COMPANY else TransferMode.ONJOB


async def plan_transfer(
    session: AsyncSession,
    handover_userid: str,
    takeover_userid: str,
    *,
    mode: TransferMode | None = None,
    customers: Sequence[str] | None = None,
    groups: bool = True,
) -> TransferPlan:
    """Everything ``handover_userid`` would hand to ``takeover_userid``.

    ``customers`` narrows the handover to these customers (external_userids or customer
    ids) and their tasks and enrollments; ``groups`` False leaves the groups out.
    """
    if handover_userid == takeover_userid:
        raise ValueError(
            f"a transfer needs two different staff members, got {handover_userid!r} twice"
        )
    plan = TransferPlan(
        handover_userid,
        takeover_userid,
        mode or await mode_of(session, handover_userid),
    )
    rows = await session.execute(
        select(Customer.id, Customer.external_userid, Customer.name)
        .join(CustomerStaff, CustomerStaff.customer_id == Customer.id)
        .where(
            CustomerStaff.staff_userid == handover_userid,
            CustomerStaff.state == FollowState.ACTIVE,
            Customer.external_userid.is_not(None),
        )
        .order_by(Customer.id)
    )
    found = [PlannedCustomer(cid, str(ext), name) for cid, ext, name in rows.all()]
    if customers is not None:
        wanted = set(customers)
        plan.customers = [
            c for c in found if c.external_userid in wanted or str(c.customer_id) in wanted
        ]
        known = {c.external_userid for c in plan.customers}
        known |= {str(c.customer_id) for c in plan.customers}
        plan.not_found = [c for c in customers if c not in known]
    else:
        plan.customers = found
    if groups:
        group_rows = await session.execute(
            select(CustomerGroup.id, CustomerGroup.chat_id, CustomerGroup.name)
            .where(
                CustomerGroup.owner_userid == handover_userid,
                CustomerGroup.dismissed_at.is_(None),
            )
            .order_by(CustomerGroup.id)
        )
        plan.groups = [PlannedGroup(gid, chat, name) for gid, chat, name in group_rows.all()]
    customer_ids = {c.customer_id for c in plan.customers}
    group_ids = {g.group_id for g in plan.groups}
    scope: dict[str, Any] = {
        "customer_ids": customer_ids,
        "group_ids": group_ids,
        "narrowed": customers,
        "groups": groups,
    }
    plan.tasks = [
        task
        for task in await session.scalars(
            select(Task)
            .where(Task.staff_userid == handover_userid, Task.state.in_(OPEN_TASK_STATES))
            .order_by(Task.id)
        )
        if _covered(task.customer_id, task.group_id, **scope)
    ]
    plan.enrollments = [
        enrollment
        for enrollment in await session.scalars(
            select(Enrollment)
            .where(
                Enrollment.staff_userid == handover_userid,
                Enrollment.state == EnrollmentState.ACTIVE,
            )
            .order_by(Enrollment.id)
        )
        if _covered(enrollment.customer_id, enrollment.group_id, **scope)
    ]
    return plan


def _covered(
    customer_id: int | None,
    group_id: int | None,
    *,
    customer_ids: set[int],
    group_ids: set[int],
    narrowed: Sequence[str] | None,
    groups: bool,
) -> bool:
    """Whole handovers take all the member's work; a narrowed one only what it moves."""
    if narrowed is None and groups:
        return True
    if customer_id is not None and customer_id in customer_ids:
        return True
    return group_id is not None and group_id in group_ids
