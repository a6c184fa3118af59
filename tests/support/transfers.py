"""A staff member with customers, a group, open tasks and running enrollments, in the
database and (optionally) on the fake WeCom: the world every transfer test starts from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Enrollment, PlaybookVersion, Task, TaskState
from tests.support.database import Database
from tests.support.engine_factories import add_customer, add_group, add_staff
from tests.support.fake_wecom import FakeWecom

LEAVER, SUCCESSOR = "zhangsan", "lisi"
SALES = 2


@dataclass
class World:
    customers: dict[str, int] = field(default_factory=dict)  # external_userid -> id
    group_id: int = 0
    tasks: list[int] = field(default_factory=list)
    enrollments: list[int] = field(default_factory=list)


def external(n: int) -> str:
    return f"wmTransferCustomer{n:014d}"


async def _enrollment(
    session: AsyncSession, version_id: int, customer_id: int, now: datetime, n: int
) -> Enrollment:
    enrollment = Enrollment(
        key=f"onboarding:c{customer_id}:{n}",
        playbook="onboarding",
        version_id=version_id,
        customer_id=customer_id,
        staff_userid=LEAVER,
        enrolled_at=now,
        updated_at=now,
    )
    session.add(enrollment)
    await session.flush()
    return enrollment


async def seed(
    db: Database, now: datetime, *, customers: int = 3, fake: FakeWecom | None = None
) -> World:
    world = World()
    async with db.sessions.begin() as session:
        await add_staff(session, LEAVER, now=now, departments=[SALES], main_department=SALES)
        await add_staff(session, SUCCESSOR, now=now, departments=[SALES], main_department=SALES)
        version = PlaybookVersion(
            name="onboarding", version=1, digest="d1", definition={}, created_at=now
        )
        session.add(version)
        await session.flush()
        for n in range(1, customers + 1):
            customer = await add_customer(session, external(n), now=now, owner=LEAVER)
            world.customers[external(n)] = customer.id
        first = world.customers[external(1)]
        group = await add_group(session, "wrTransferGroup0000000000000001", now=now, owner=LEAVER)
        world.group_id = group.id
        task = Task(
            key=f"playbook:onboarding:c{first}:step:0",
            staff_userid=LEAVER,
            customer_id=first,
            origin="playbook:onboarding:step:0",
            title="Say hello",
            script="Hello!",
            due_at=now + timedelta(hours=4),
            state=TaskState.OPEN,
            history=[],
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        await session.flush()
        world.tasks.append(task.id)
        world.enrollments.append((await _enrollment(session, version.id, first, now, 1)).id)
    if fake is not None:
        fake.add_staff(LEAVER, "张三", department=[SALES])
        fake.add_staff(SUCCESSOR, "李四", department=[SALES])
        for n in range(1, customers + 1):
            fake.add_customer(external(n), f"客户{n}", follow=[LEAVER])
        fake.add_group("wrTransferGroup0000000000000001", "VIP 群", owner=LEAVER)
    return world
