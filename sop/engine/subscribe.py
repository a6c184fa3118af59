"""Wiring the engine to the event bus: one subscriber, reactions in a fixed order.

One subscriber on :class:`~sop.events.DomainEvent` (rather than one per reaction) so the order
is the code's, not the registration's:

1. opt-out / opt-in words: consumed, nothing else sees them;
2. exit criteria: running enrollments the event ends;
3. goals of running (or recent) enrollments;
4. replies resuming waits;
5. triggers: new enrollments, last, so an enrollment is never exited, resumed or converted
   by the very event that started it.

Everything runs inside the transaction processing the event (see :mod:`sop.events`), so an
event's effects commit with it, once. The catalog is asked for on every event: a reload
swaps it and the next event sees the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from sop.clock import Clock
from sop.engine import reactions
from sop.engine.catalog import Catalog
from sop.engine.enroll import EnrollResult, enroll
from sop.engine.matching import event_name, match
from sop.engine.optout import handle_opt_words
from sop.events import DomainEvent, EventBus, MessageReceived
from sop.settings import SopSettings

log = logging.getLogger(__name__)


class EngineSubscriber:
    """What the engine does with one domain event; see the module docstring for the order."""

    def __init__(
        self,
        catalog_provider: Callable[[], Catalog],
        *,
        settings: SopSettings,
        clock: Clock,
        zone_default: str,
    ) -> None:
        self._catalog = catalog_provider
        self._settings = settings
        self._clock = clock
        self._zone = zone_default

    async def __call__(self, session: AsyncSession, event: DomainEvent) -> None:
        name = event_name(event)
        if name is None:
            return
        catalog = self._catalog()
        now = self._clock.now()
        if isinstance(event, MessageReceived) and await handle_opt_words(
            session, catalog, event, settings=self._settings.opt_out, now=now
        ):
            return
        await reactions.apply_exits(session, catalog, event, now=now)
        await reactions.mark_goals(session, catalog, event, now=now)
        if isinstance(event, MessageReceived):
            await reactions.resume_replies(
                session, catalog, event, now=now, zone_default=self._zone
            )
        await self.enroll_triggered(session, catalog, event, name)

    async def enroll_triggered(
        self, session: AsyncSession, catalog: Catalog, event: DomainEvent, name: str
    ) -> list[EnrollResult]:
        """Enroll the event's customer in every enabled playbook whose trigger it fires."""
        results: list[EnrollResult] = []
        for entry in catalog.by_event(name):
            found = await match(session, entry.name, entry.playbook.trigger, event)
            if found is None:
                continue
            result = await enroll(
                session,
                catalog=catalog,
                playbook_name=entry.name,
                customer_id=found.customer_id,
                group_id=found.group_id,
                staff_userid=found.staff_userid,
                key=found.key,
                context=found.context,
                now=self._clock.now(),
                settings=self._settings,
                zone_default=self._zone,
            )
            if result.enrollment is None:
                log.debug("%s: %s not enrolled: %s", entry.name, found.key, result.skip)
            results.append(result)
        return results


def subscribe_engine(
    bus: EventBus,
    catalog_provider: Callable[[], Catalog],
    *,
    settings: SopSettings,
    clock: Clock,
    zone_default: str,
) -> EngineSubscriber:
    """Register the engine on ``bus``; returns the subscriber (for tests and previews)."""
    subscriber = EngineSubscriber(
        catalog_provider, settings=settings, clock=clock, zone_default=zone_default
    )
    bus.subscribe(DomainEvent, subscriber)
    return subscriber
