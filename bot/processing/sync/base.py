"""What every sync gets, and how a refresh kind is declared (fetch + apply)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.context import Stamp
from bot.processing.directory import DirectoryApi
from sop.clock import Clock
from sop.events import DomainEvent
from store.models import Direction, Interaction


@dataclass
class SyncContext:
    session: AsyncSession
    clock: Clock
    publish: Callable[[DomainEvent], Awaitable[None]]
    source: str  # "refresh:<kind>"
    now: datetime

    def stamp(self) -> Stamp:
        return {"occurred_at": self.now, "source": self.source, "inbox_id": None}

    def record(
        self,
        *,
        kind: str,
        summary: str,
        data: dict[str, Any],
        customer_id: int | None = None,
        group_id: int | None = None,
        staff_userid: str | None = None,
    ) -> None:
        """A timeline entry for a change the refresh discovered (no inbox row behind it)."""
        self.session.add(
            Interaction(
                customer_id=customer_id,
                group_id=group_id,
                staff_userid=staff_userid,
                direction=Direction.EVENT,
                kind=kind,
                summary=summary,
                data=data,
                source=self.source,
                inbox_id=None,
                seq=0,
                occurred_at=self.now,
                recorded_at=self.now,
            )
        )


@dataclass(frozen=True)
class Sync:
    """How to fetch one kind of object and apply what came back."""

    kind: str
    fetch: Callable[[DirectoryApi, str], Awaitable[Any]]
    apply: Callable[[SyncContext, str, Any], Awaitable[None]]
