"""What a handler gets besides the message: the transaction, the time, the row, publishing,
and the batch the row is processed in.

One context per inbox row. :meth:`HandlerContext.record` appends to the timeline with the
row's next ``seq``, so the entries of a row are unique by ``(inbox_id, seq)`` and a row can
never add them twice. Handlers write through the batch: records from :attr:`people` change
like ORM objects, timeline entries and refresh requests are deferred to the batch's flush; a
handler that must run a statement itself calls :meth:`savepoint` first (see
:mod:`store.batch`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing import refresh_queue
from bot.processing.deferred import TIMELINE
from bot.processing.messages import PlatformMessage
from bot.processing.refresh_queue import REFRESH, refresh_item
from bot.processing.roster import Roster
from sop.clock import Clock
from sop.events import DomainEvent
from store.batch import Batch
from store.models import Direction


class Stamp(TypedDict):
    """The fields every domain event takes from the row: ``SomeEvent(**ctx.stamp(msg), ...)``."""

    occurred_at: datetime
    source: str
    inbox_id: int | None


@dataclass
class HandlerContext:
    session: AsyncSession
    clock: Clock
    inbox_id: int
    source: str
    received_at: datetime
    publish: Callable[[DomainEvent], Awaitable[None]]
    batch: Batch | None = None
    roster: Roster | None = None
    entries: int = 0

    @property
    def people(self) -> Roster:
        """The customers, staff, groups and followers of the batch (created when missing)."""
        if self.roster is None:
            raise RuntimeError(f"inbox row {self.inbox_id}: the context has no batch roster")
        return self.roster

    async def savepoint(self) -> None:
        """Before a statement of the handler's own: the row's savepoint (see store.batch)."""
        if self.batch is not None:
            await self.batch.savepoint()

    def occurred_at(self, message: PlatformMessage) -> datetime:
        """When it happened: the platform's time, else when the callback arrived."""
        return message.created_at or self.received_at

    def stamp(self, message: PlatformMessage) -> Stamp:
        return {
            "occurred_at": self.occurred_at(message),
            "source": self.source,
            "inbox_id": self.inbox_id,
        }

    def record(
        self,
        message: PlatformMessage,
        *,
        direction: Direction,
        kind: str,
        summary: str,
        data: dict[str, Any] | None = None,
        customer_id: int | None = None,
        group_id: int | None = None,
        staff_userid: str | None = None,
    ) -> None:
        """Append one timeline entry for this row (written with the batch)."""
        entry = {
            "customer_id": customer_id,
            "group_id": group_id,
            "staff_userid": staff_userid,
            "direction": direction,
            "kind": kind,
            "summary": summary,
            "data": data if data is not None else dict(message.raw),
            "source": self.source,
            "inbox_id": self.inbox_id,
            "seq": self.entries,
            "occurred_at": self.occurred_at(message),
            "recorded_at": self.clock.now(),
        }
        self.entries += 1
        if self.batch is None:
            raise RuntimeError(f"inbox row {self.inbox_id}: the context has no batch")
        self.batch.defer(TIMELINE, entry)

    async def refresh(self, kind: str, key: str) -> None:
        """Ask for ``kind``/``key`` to be fetched (see :mod:`bot.processing.refresh_queue`)."""
        if self.batch is None:
            await refresh_queue.request_refresh(self.session, kind, key, self.clock)
            return
        self.batch.defer(REFRESH, refresh_item(kind, key, self.clock.now()))
