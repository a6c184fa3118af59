"""A press on a template card reaches whoever created the card: routes by the outbox key.

A button card goes out as an outbox row whose idempotency key its creator chose
(``task:42:card``, ``enrollment:7:step:3``). When a staff member presses a button, the
``template_card_event`` callback names the card's ``task_id``; :func:`card_origin` finds the
row the card came from, and the handler publishes ``CardPressed`` with that row's id and key
(``outbox_id``, ``origin``). :class:`CardRoutes` then hands the press to the part that owns
the key's prefix, inside the transaction that processes the callback:

    routes = CardRoutes(bus)
    routes.on("task:", tasks.card_pressed)

A press whose origin no route claims (or whose card is not in the outbox) is logged; the
callback's timeline entry keeps it, with the origin, for an operator to see.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.events import CardPressed, EventBus
from store.models import OutboxRow

log = logging.getLogger(__name__)

CardHandler = Callable[[AsyncSession, CardPressed], Awaitable[None]]

OUTBOX = OutboxRow.metadata.tables[OutboxRow.__tablename__]
_C = OUTBOX.c


@dataclass(frozen=True)
class CardOrigin:
    """The outbox row a card was sent as."""

    outbox_id: int
    key: str
    channel: str
    recipient: str


async def card_origin(session: AsyncSession, task_id: str) -> CardOrigin | None:
    """The latest outbox row whose template card carries ``task_id``, or None.

    The platform wants task ids unique per app, so there is one such row unless a creator
    reused an id; then the latest card is the one a press can still come from.
    """
    if not task_id:
        return None
    found = (
        await session.execute(
            select(_C.id, _C.idempotency_key, _C.channel, _C.recipient)
            .where(_C.payload[("template_card", "task_id")].as_string() == task_id)
            .order_by(_C.id.desc())
            .limit(1)
        )
    ).first()
    if found is None:
        return None
    row_id, key, channel, recipient = found
    return CardOrigin(row_id, key, channel, recipient)


class CardRoutes:
    """Dispatches ``CardPressed`` events by the longest registered prefix of their origin."""

    def __init__(self, bus: EventBus) -> None:
        self._routes: dict[str, CardHandler] = {}
        bus.subscribe(CardPressed, self._dispatch)

    def on(self, prefix: str, handler: CardHandler) -> None:
        """Send presses on cards whose outbox key starts with ``prefix`` to ``handler``."""
        if not prefix:
            raise ValueError("a card route needs a non-empty origin prefix, e.g. 'task:'")
        if prefix in self._routes:
            raise ValueError(
                f"card route {prefix!r} is already taken by {self._routes[prefix]!r}:"
                " one owner per prefix (use a longer prefix for a sub-route)"
            )
        self._routes[prefix] = handler

    def route_of(self, origin: str) -> CardHandler | None:
        matching = [prefix for prefix in self._routes if origin.startswith(prefix)]
        return self._routes[max(matching, key=len)] if matching else None

    async def _dispatch(self, session: AsyncSession, event: CardPressed) -> None:
        if event.origin is None:
            log.info(
                "card %r pressed by %s (%s) was not sent from the outbox: not routed",
                event.task_id,
                event.staff_userid,
                event.event_key,
            )
            return
        handler = self.route_of(event.origin)
        if handler is None:
            log.warning(
                "card %r (outbox row %s, origin %r) pressed by %s (%s): no route claims the"
                " origin, kept on the timeline only; register one with CardRoutes.on(prefix)",
                event.task_id,
                event.outbox_id,
                event.origin,
                event.staff_userid,
                event.event_key,
            )
            return
        await handler(session, event)
