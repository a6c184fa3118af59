"""Domain events and the bus that carries them from the bot's handlers to the engine.

Handlers publish events inside the transaction that processes an inbox row, and subscribers
run inside that same transaction: whatever a subscriber writes (an enrollment, an outbox row)
commits or rolls back together with the model change that caused it, so an event is acted on
exactly once. Subscribers therefore must not do slow I/O; they record work for later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from store.batch import Batch


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Something that happened to a customer, a group or a staff member."""

    occurred_at: datetime
    source: str
    inbox_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class CustomerAdded(DomainEvent):
    customer_id: int
    external_userid: str
    staff_userid: str
    channel_state: str | None = None
    welcome_code: str | None = None
    half: bool = False  # add_half_external_contact: the customer added, staff not yet accepted


@dataclass(frozen=True, kw_only=True)
class CustomerRemoved(DomainEvent):
    customer_id: int
    external_userid: str
    staff_userid: str
    removed_by: str  # "staff" (del_external_contact) or "customer" (del_follow_user)


@dataclass(frozen=True, kw_only=True)
class CustomerUpdated(DomainEvent):
    customer_id: int
    external_userid: str
    staff_userid: str | None = None


@dataclass(frozen=True, kw_only=True)
class TransferFailed(DomainEvent):
    customer_id: int
    external_userid: str
    staff_userid: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class MessageReceived(DomainEvent):
    """A message from a customer (or a staff member to the app, or a group @-mention)."""

    msg_type: str
    text: str = ""
    customer_id: int | None = None
    staff_userid: str | None = None
    group_id: int | None = None
    chat_type: str = "single"  # "single" or "group"
    msg_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class JoinedGroup(DomainEvent):
    group_id: int
    chat_id: str
    member_userid: str
    customer_id: int | None = None
    join_scene: int | None = None


@dataclass(frozen=True, kw_only=True)
class LeftGroup(DomainEvent):
    group_id: int
    chat_id: str
    member_userid: str
    customer_id: int | None = None
    quit_scene: int | None = None


@dataclass(frozen=True, kw_only=True)
class GroupChanged(DomainEvent):
    """A group was created, renamed, re-noticed, handed to a new owner or dismissed."""

    group_id: int
    chat_id: str
    change: str  # create, change_name, change_notice, change_owner, dismiss


@dataclass(frozen=True, kw_only=True)
class TagAdded(DomainEvent):
    customer_id: int
    tag_id: int
    tag_name: str
    staff_userid: str = ""


@dataclass(frozen=True, kw_only=True)
class TagRemoved(DomainEvent):
    customer_id: int
    tag_id: int
    tag_name: str
    staff_userid: str = ""


@dataclass(frozen=True, kw_only=True)
class Subscribed(DomainEvent):
    """A user followed (or unfollowed, ``subscribed=False``) an Official Account."""

    customer_id: int
    account: str
    openid: str
    subscribed: bool = True
    scene: str | None = None


@dataclass(frozen=True, kw_only=True)
class CardPressed(DomainEvent):
    """A staff member pressed a button on a template card (``template_card_event``)."""

    staff_userid: str
    event_key: str
    task_id: str
    response_code: str | None = None
    card_type: str | None = None
    #: The outbox row the card was sent as, and its idempotency key (who created it):
    #: :class:`sop.delivery.card_routes.CardRoutes` dispatches on the key's prefix.
    outbox_id: int | None = None
    origin: str | None = None


@dataclass(frozen=True, kw_only=True)
class StaffAction(DomainEvent):
    """A staff member opened the app or pressed a menu entry (enter_agent, click, view)."""

    staff_userid: str
    action: str
    key: str = ""


@dataclass(frozen=True, kw_only=True)
class StaffLeft(DomainEvent):
    """A staff member left the company (``change_contact`` ``delete_user``): their customers,
    groups, open tasks and enrollments are to be handed to a successor."""

    staff_userid: str
    departments: tuple[int, ...] = ()
    main_department: int | None = None


E = TypeVar("E", bound=DomainEvent)
Subscriber = Callable[[AsyncSession, Any], Awaitable[None]]
#: Reads what subscribers need about a batch's customers before its rows are handled.
Preparer = Callable[[AsyncSession, Sequence[int]], Awaitable[None]]


class EventBus:
    """Synchronous-in-transaction publish/subscribe keyed by event class (and its bases).

    Inside an inbox batch (:mod:`store.batch`) a row runs statements only in its savepoint.
    A subscriber registered ``batched=True`` opens it itself when it needs one; for any other
    subscriber the bus opens it before delivering the event, so such subscribers may use the
    session freely.
    """

    def __init__(self) -> None:
        self._subscribers: dict[type[DomainEvent], list[tuple[Subscriber, bool]]] = defaultdict(
            list
        )
        self._preparers: list[Preparer] = []
        self._resolved: dict[type[DomainEvent], tuple[tuple[Subscriber, ...], bool]] = {}

    def subscribe(
        self,
        event_type: type[E],
        subscriber: Callable[[AsyncSession, E], Awaitable[None]],
        *,
        batched: bool = False,
    ) -> None:
        """``batched``: the subscriber calls ``Batch.savepoint()`` before any statement."""
        self._subscribers[event_type].append((subscriber, batched))
        self._resolved.clear()

    def on_prepare(self, preparer: Preparer) -> None:
        """Call ``preparer(session, customer_ids)`` for every batch, before its rows."""
        self._preparers.append(preparer)

    async def prepare(self, session: AsyncSession, customer_ids: Sequence[int]) -> None:
        for preparer in self._preparers:
            await preparer(session, customer_ids)

    async def publish(self, session: AsyncSession, event: DomainEvent) -> None:
        subscribers, batched = self._for(type(event))
        if not batched:
            batch = Batch.of(session)
            if batch is not None:
                await batch.savepoint()
        for subscriber in subscribers:
            await subscriber(session, event)

    def _for(self, event_type: type[DomainEvent]) -> tuple[tuple[Subscriber, ...], bool]:
        found = self._resolved.get(event_type)
        if found is None:
            pairs = [pair for cls in event_type.__mro__ for pair in self._subscribers.get(cls, ())]
            found = (tuple(s for s, _ in pairs), all(batched for _, batched in pairs))
            self._resolved[event_type] = found
        return found
