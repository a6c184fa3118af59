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

Inside an inbox batch (:mod:`store.batch`) the subscriber first tries to judge the event from
what the batch read up front (:mod:`sop.engine.facts`): when no opt word is said and no
running enrollment could exit, meet its goal or resume, it only has to decide the triggers,
and enrolls through :mod:`sop.engine.enroll_fast` without a statement. Anything else, and any
event outside a batch, takes the statement-by-statement path below, in the row's savepoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from sop.clock import Clock
from sop.engine import enroll_fast, reactions
from sop.engine.catalog import Catalog
from sop.engine.enroll import EnrollResult, enroll
from sop.engine.facts import FACTS, PEOPLE, EnrollmentFacts, Known, PeopleView, read_facts
from sop.engine.matching import (
    EVENT_NAMES,
    event_name,
    is_customer_message,
    match,
    match_known,
)
from sop.engine.optout import handle_opt_words, says_opt_word
from sop.events import (
    CustomerRemoved,
    DomainEvent,
    EventBus,
    JoinedGroup,
    LeftGroup,
    MessageReceived,
    TagAdded,
    TagRemoved,
)
from sop.playbooks.model import Playbook
from sop.settings import SopSettings
from store.batch import Batch
from store.models import EnrollmentState, Waiting

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
        self._everyone: dict[int, bool] = {}  # version id: audience is everyone

    async def __call__(self, session: AsyncSession, event: DomainEvent) -> None:
        name = event_name(event)
        if name is None:
            return
        catalog = self._catalog()
        now = self._clock.now()
        batch = Batch.of(session)
        if batch is None:
            await self._react(session, catalog, event, name, now)
            return
        if self._judged_from_facts(batch, catalog, event, name, now):
            return
        facts = EnrollmentFacts.of_batch(batch)
        trusted = facts is not None and facts.trusted()
        await batch.savepoint()
        await self._react(session, catalog, event, name, now)
        customer_id = getattr(event, "customer_id", None)
        if facts is not None and trusted and customer_id is not None:
            # Only this path wrote enrollments since the batch read them, and only this
            # customer's: read the customer's again, and the others stay trusted.
            await facts.reread(customer_id)

    async def _react(
        self, session: AsyncSession, catalog: Catalog, event: DomainEvent, name: str, now: datetime
    ) -> None:
        """The reactions statement by statement (see the module docstring for the order)."""
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

    # -- inside an inbox batch ------------------------------------------------------------------

    async def prepare(self, session: AsyncSession, customer_ids: Sequence[int]) -> None:
        """Read the batch's enrollments (and take the customers' enrollment locks) up front."""
        batch = Batch.of(session)
        if batch is None or not customer_ids:
            return
        catalog = self._catalog()
        triggered = any(catalog.by_event(name) for name in EVENT_NAMES.values())
        known = await read_facts(batch, customer_ids, lock=triggered)
        versions: dict[int, Playbook] = {}
        for entry in (catalog.get(name) for name in catalog.names()):
            if entry is not None:  # the versions this batch's enrollments take
                versions[entry.version_id] = entry.playbook
        for vid in {k.version_id for ks in known.values() for k in ks} - versions.keys():
            versions[vid] = await catalog.get_version(session, vid)
        batch.state[FACTS] = EnrollmentFacts(batch, known, versions)

    def _judged_from_facts(
        self, batch: Batch, catalog: Catalog, event: DomainEvent, name: str, now: datetime
    ) -> bool:
        """Handle ``event`` from the batch's facts; False (having changed nothing) when the
        statement-by-statement path must."""
        facts = EnrollmentFacts.of_batch(batch)
        people: PeopleView | None = batch.state.get(PEOPLE)
        customer_id = getattr(event, "customer_id", None)
        if facts is None or people is None:
            return False
        if customer_id is None:
            return True  # no customer: nothing to react to, nobody to enroll
        if isinstance(event, MessageReceived) and says_opt_word(event, self._settings.opt_out):
            return False
        known = facts.of(customer_id)
        if known is None or not _quiet(facts, known, event, name, now):
            return False
        plans: list[enroll_fast.Plan] = []
        for entry in catalog.by_event(name):
            if isinstance(event, TagAdded | TagRemoved):
                return False
            group_name: str | None = None
            if isinstance(event, JoinedGroup | LeftGroup):
                group = people.known_group(event.group_id)
                if group is None:
                    return False
                group_name = group.name
            trigger = entry.playbook.trigger
            found = match_known(entry.name, trigger, event, group_name=group_name)
            if found is None:
                continue
            everyone = self._everyone.get(entry.version_id)
            if everyone is None:
                everyone = self._everyone[entry.version_id] = entry.playbook.audience.is_everyone
            decided = enroll_fast.plan(
                entry,
                found,
                people=people,
                known=known,
                everyone=everyone,
                now=now,
                zone_default=self._zone,
            )
            if decided is None:
                return False
            if isinstance(decided, EnrollResult):
                log.debug("%s: %s not enrolled: %s", entry.name, found.key, decided.skip)
                continue
            plans.append(decided)
        for chosen in plans:
            enroll_fast.defer(batch, facts, chosen, now=self._clock.now())
        return True


def _quiet(
    facts: EnrollmentFacts, known: list[Known], event: DomainEvent, name: str, now: datetime
) -> bool:
    """True when ``event`` can exit, convert and resume none of ``known`` (what
    :mod:`sop.engine.reactions` would find); False when it may, or a version is not read."""
    customer_message = is_customer_message(event)
    exits = customer_message or isinstance(event, TagAdded | CustomerRemoved)
    goals = customer_message or not isinstance(event, MessageReceived)
    for enrollment in known:
        playbook = facts.versions.get(enrollment.version_id)
        if playbook is None:
            return False
        if enrollment.state == EnrollmentState.ACTIVE:
            criteria = playbook.exit
            if exits and (
                (criteria.replied and customer_message)
                or (criteria.tags and isinstance(event, TagAdded))
                or (criteria.left and isinstance(event, CustomerRemoved))
            ):
                return False
            if customer_message and enrollment.waiting == Waiting.REPLY:
                return False
        goal = playbook.goal
        if not goals or goal is None or enrollment.goal_met_at is not None:
            continue
        if enrollment.enrolled_at > now:
            continue
        if goal.within is None and enrollment.state != EnrollmentState.ACTIVE:
            continue
        if goal.within is not None and now > enrollment.enrolled_at + goal.within:
            continue
        if goal.event == name or (goal.event is None and isinstance(event, TagAdded)):
            return False
    return True


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
    bus.subscribe(DomainEvent, subscriber, batched=True)
    bus.on_prepare(subscriber.prepare)
    return subscriber
