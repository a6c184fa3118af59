"""The execution side of the engine on a real database: a catalog, the runner
(:class:`sop.engine.runner.Engine`) with the real renderer, enrollments made with the real
:func:`sop.engine.enroll.enroll`, and readers for what a run left behind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from sop.engine.catalog import Catalog, register
from sop.engine.enroll import enroll
from sop.engine.runner import Engine
from sop.playbooks.model import Playbook
from sop.rendering import Renderer
from sop.settings import SopSettings
from store.models import (
    AgendaItem,
    Enrollment,
    MarketingTouch,
    OutboxRow,
    Staff,
    StepRun,
    Task,
)
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.engine_factories import add_customer, add_staff, playbook

ZONE = "Asia/Shanghai"


class Harness:
    def __init__(
        self, db: Database, clock: ManualClock, settings: SopSettings | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings or SopSettings()
        self.catalog = Catalog()
        self.runner = self.engine()

    def engine(self) -> Engine:
        """Another engine on the same database (as another process would run)."""
        return Engine(
            self.db.sessions, lambda: self.catalog, Renderer(), self.clock, self.settings, ZONE
        )

    async def load(self, *playbooks: Playbook) -> None:
        async with self.db.sessions.begin() as session:
            self.catalog = await register(
                session, {p.name: p for p in playbooks}, now=self.clock.now()
            )

    async def playbook(self, name: str = "p", **fields: Any) -> Playbook:
        fields.setdefault("marketing", True)
        loaded = playbook(name, **fields)
        await self.load(*[e.playbook for e in self.catalog.active() if e.name != name], loaded)
        return loaded

    async def customer(
        self, external_userid: str = "wm1", owner: str = "alice", **extra: Any
    ) -> int:
        async with self.db.sessions.begin() as session:
            if not await session.scalar(select(Staff.id).where(Staff.userid == owner)):
                await add_staff(session, owner, now=self.clock.now())
            customer = await add_customer(
                session, external_userid, now=self.clock.now(), owner=owner, **extra
            )
            return customer.id

    async def enroll(
        self,
        name: str,
        customer_id: int,
        *,
        key: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> int:
        async with self.db.sessions.begin() as session:
            result = await enroll(
                session,
                catalog=self.catalog,
                playbook_name=name,
                customer_id=customer_id,
                key=key or f"{name}:{customer_id}:{self.clock.now().isoformat()}",
                context=context,
                now=self.clock.now(),
                settings=self.settings,
                zone_default=ZONE,
            )
            assert result.enrollment is not None, (result.skip, result.detail)
            return result.enrollment.id

    async def run(self) -> int:
        return await self.runner.run_once()

    async def enrollment(self, enrollment_id: int) -> Enrollment:
        async with self.db.sessions() as session:
            found = await session.get(Enrollment, enrollment_id)
            assert found is not None
            return found

    async def agenda(self, enrollment_id: int) -> Sequence[AgendaItem]:
        return await self._all(
            select(AgendaItem)
            .where(AgendaItem.enrollment_id == enrollment_id)
            .order_by(AgendaItem.seq)
        )

    async def runs(self, enrollment_id: int) -> Sequence[StepRun]:
        return await self._all(
            select(StepRun).where(StepRun.enrollment_id == enrollment_id).order_by(StepRun.id)
        )

    async def outcomes(self, enrollment_id: int) -> list[tuple[str, str]]:
        return [(r.step_id, r.outcome) for r in await self.runs(enrollment_id)]

    async def outbox(self) -> Sequence[OutboxRow]:
        return await self._all(select(OutboxRow).order_by(OutboxRow.id))

    async def tasks(self) -> Sequence[Task]:
        return await self._all(select(Task).order_by(Task.id))

    async def touches(self) -> Sequence[MarketingTouch]:
        return await self._all(select(MarketingTouch).order_by(MarketingTouch.id))

    async def _all(self, query: Any) -> Sequence[Any]:
        async with self.db.sessions() as session:
            return (await session.scalars(query)).all()
