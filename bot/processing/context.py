"""What a handler gets besides the message: the transaction, the time, the row, publishing.

One context per inbox row. :meth:`HandlerContext.record` appends to the timeline with the
row's next ``seq``, so the entries of a row are unique by ``(inbox_id, seq)`` and a row can
never add them twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.messages import PlatformMessage
from sop.clock import Clock
from sop.events import DomainEvent
from store.models import Direction, Interaction


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
    interactions: list[Interaction] = field(default_factory=list)

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
    ) -> Interaction:
        """Append one timeline entry for this row."""
        entry = Interaction(
            customer_id=customer_id,
            group_id=group_id,
            staff_userid=staff_userid,
            direction=direction,
            kind=kind,
            summary=summary,
            data=data if data is not None else dict(message.raw),
            source=self.source,
            inbox_id=self.inbox_id,
            seq=len(self.interactions),
            occurred_at=self.occurred_at(message),
            recorded_at=self.clock.now(),
        )
        self.session.add(entry)
        self.interactions.append(entry)
        return entry
