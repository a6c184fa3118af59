"""The enrollment side of the engine, wired as the server wires it: a real EventBus with the
engine subscribed, events published inside a session transaction on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from sop.engine.catalog import Catalog, register
from sop.engine.subscribe import subscribe_engine
from sop.events import DomainEvent, EventBus
from sop.playbooks.model import Playbook
from sop.settings import SopSettings
from store.models import AgendaItem, Enrollment, OutboxRow, StepRun
from tests.support.clock import ManualClock
from tests.support.database import Database

ZONE = "Asia/Shanghai"


class Engine:
    """A bus with the engine subscribed, the current catalog, and readers for its tables."""

    def __init__(self, db: Database, clock: ManualClock) -> None:
        self.db = db
        self.clock = clock
        self.settings = SopSettings()
        self.catalog = Catalog()
        self.bus = EventBus()
        subscribe_engine(
            self.bus, lambda: self.catalog, settings=self.settings, clock=clock, zone_default=ZONE
        )

    async def load(self, *playbooks: Playbook) -> Catalog:
        """Register ``playbooks`` (a reload: the catalog is exactly these)."""
        async with self.db.sessions.begin() as session:
            self.catalog = await register(
                session, {p.name: p for p in playbooks}, now=self.clock.now()
            )
        return self.catalog

    async def publish(self, *events: DomainEvent) -> None:
        """Publish ``events`` in one transaction, as the processor does for an inbox row."""
        async with self.db.sessions.begin() as session:
            for event in events:
                await self.bus.publish(session, event)

    def stamp(self, inbox_id: int | None = None, source: str = "wecom:app") -> dict[str, Any]:
        return {"occurred_at": self.clock.now(), "source": source, "inbox_id": inbox_id}

    async def enrollments(self, playbook: str | None = None) -> Sequence[Enrollment]:
        async with self.db.sessions() as session:
            query = select(Enrollment).order_by(Enrollment.id)
            if playbook is not None:
                query = query.where(Enrollment.playbook == playbook)
            return (await session.scalars(query)).all()

    async def agenda(self, enrollment_id: int) -> Sequence[AgendaItem]:
        async with self.db.sessions() as session:
            query = (
                select(AgendaItem)
                .where(AgendaItem.enrollment_id == enrollment_id)
                .order_by(AgendaItem.seq)
            )
            return (await session.scalars(query)).all()

    async def step_runs(self, enrollment_id: int) -> Sequence[StepRun]:
        async with self.db.sessions() as session:
            query = select(StepRun).where(StepRun.enrollment_id == enrollment_id)
            return (await session.scalars(query.order_by(StepRun.id))).all()

    async def outbox(self) -> Sequence[OutboxRow]:
        async with self.db.sessions() as session:
            return (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()

    @property
    def now(self) -> datetime:
        return self.clock.now()


async def wait_until_blocked(db: Database) -> None:
    """Let the other task reach its lock wait (PostgreSQL: until it is waiting on a lock)."""
    if db.backend != "postgres":
        for _ in range(20):
            await asyncio.sleep(0)
        return
    async with db.engine.connect() as conn:
        for _ in range(500):
            waiting = await conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
            if waiting:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the other transaction never waited for a lock")


@pytest.fixture
def engine(db: Database, clock: ManualClock) -> Engine:
    return Engine(db, clock)
