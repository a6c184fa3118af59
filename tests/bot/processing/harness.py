"""Inbox rows in, processor run, model and published events out: the handlers' test bench."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback.lanes import lane_of, priority_of
from bot.processing.handlers.registry import build_router
from bot.processing.processor import InboxProcessor
from sop.events import DomainEvent, EventBus
from store.models import Base, InboxRow, InboxState, Interaction
from tests.support.clock import ManualClock
from tests.support.database import Database

E = TypeVar("E", bound=DomainEvent)
T = TypeVar("T", bound=Base)
_keys = itertools.count(1)


@dataclass
class Harness:
    db: Database
    clock: ManualClock
    bus: EventBus = field(default_factory=EventBus)
    events: list[DomainEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        async def record(_session: AsyncSession, event: DomainEvent) -> None:
            self.events.append(event)

        self.bus.subscribe(DomainEvent, record)
        self.processor = InboxProcessor(self.db.sessions, build_router(), self.bus, self.clock)

    async def add(
        self, payload: str, *, source: str = "wecom:sales", content_type: str = ""
    ) -> int:
        kind = content_type or ("json" if payload.lstrip().startswith("{") else "xml")
        async with self.db.sessions.begin() as session:
            row = InboxRow(
                source=source,
                dedupe_key=f"test-{next(_keys)}",
                content_type=kind,
                payload=payload,
                received_at=self.clock.now(),
                lane=lane_of(kind, payload),
                priority=priority_of(kind, payload),
            )
            session.add(row)
            await session.flush()
            return row.id

    async def feed(self, *payloads: str, source: str = "wecom:sales") -> list[int]:
        """Insert the rows, process them, and insist every one of them is done."""
        ids = [await self.add(payload, source=source) for payload in payloads]
        while await self.processor.run_once():
            pass
        rows = await self.all(InboxRow)
        failed = {row.id: row.error for row in rows if row.state is not InboxState.DONE}
        assert not failed, failed
        return ids

    async def all(self, model: type[T], **filters: Any) -> list[T]:
        async with self.db.sessions() as session:
            stmt = select(model).filter_by(**filters).order_by(model.id)  # type: ignore[attr-defined]
            return list((await session.scalars(stmt)).all())

    async def one(self, model: type[T], **filters: Any) -> T:
        rows = await self.all(model, **filters)
        assert len(rows) == 1, f"{len(rows)} {model.__name__} rows match {filters}"
        return rows[0]

    async def count(self, model: type[Base]) -> int:
        async with self.db.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    async def timeline(self, **filters: Any) -> list[Interaction]:
        return await self.all(Interaction, **filters)

    def published(self, event_type: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, event_type)]
