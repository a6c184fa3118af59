"""What a step executor receives and returns.

An executor is one async function per step type (``send``, ``nudge``, ...), registered in
:mod:`sop.engine.steps.registry`. It gets a :class:`StepContext` (the session of the row's
transaction, the enrollment, its playbook version, the step, the time) and returns a
:class:`StepResult`: what happened (written to the step-run trace) and where the enrollment
goes next. Executors never commit, never schedule the next step themselves (the executor
module does, from ``goto``/``wait``) and never talk to the platform: they queue outbox rows
and marketing touches with the transaction's writes (:meth:`StepContext.enqueue`,
:meth:`StepContext.touch`), which go out with the step's trace, take the customer's context
and cap count from the reads the transaction shares, and read and write anything else (a
task) in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from sop.engine.enroll import owner_of
from sop.engine.frequency import CapCheck
from sop.engine.taken import TakenCustomer, TakenEnrollment, TakenRow
from sop.engine.transaction import Transaction
from sop.playbooks.model import Content, Playbook, Step
from sop.rendering.context import assemble_context
from sop.settings import SopSettings
from store.models import CustomerGroup

#: A branch target that ends the enrollment (``goto: stop``, ``then: stop``).
STOP = "stop"


class Renderer(Protocol):
    """Renders a message body (inline text or a library template) with a context."""

    def render(self, content: Content, context: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class Services:
    """What every step may use besides the database: built once by the engine."""

    renderer: Renderer
    settings: SopSettings
    zone_default: str


@dataclass(frozen=True)
class StepResult:
    """What a step did (``outcome`` and ``detail`` go to the trace) and where to go next.

    ``goto``: a step id or :data:`STOP` (None: the next step in order). ``wait``: the step
    put the enrollment to sleep (a reply, a task) and scheduled its own timeout row.
    """

    outcome: str = "done"
    detail: Mapping[str, Any] = field(default_factory=dict)
    goto: str | None = None
    wait: bool = False


#: ``StepContext`` caches: not looked up yet (None is a valid answer: no owner).
_UNSET: Any = object()


@dataclass
class StepContext:
    """One execution's inputs: the row, its enrollment and customer as the executor read
    them (plain values, not ORM objects), and the transaction it runs in (its session and
    connection, its pending writes, its shared reads). The owner is read at most once per
    step, however many helpers of a step ask for it."""

    tx: Transaction
    enrollment: TakenEnrollment
    playbook: Playbook
    index: int
    item: TakenRow
    now: datetime
    services: Services
    loaded_customer: TakenCustomer | None = field(repr=False)
    _owner: str | None = field(default=_UNSET, init=False, repr=False)

    @property
    def session(self) -> AsyncSession:
        return self.tx.session

    @property
    def connection(self) -> AsyncConnection:
        return self.tx.connection

    @property
    def step(self) -> Step:
        return self.playbook.steps[self.index]

    @cached_property
    def action(self) -> str:
        """The step's action (``send``, ``tag``, ...), looked up once per execution."""
        return self.step.action

    @property
    def step_id(self) -> str:
        return self.playbook.step_id(self.index)

    @property
    def zone(self) -> ZoneInfo:
        return self.playbook.zone(self.services.zone_default)

    @property
    def key(self) -> str:
        """The idempotency key of whatever this execution creates (outbox row, task)."""
        return f"enrollment:{self.enrollment.id}:seq:{self.item.seq}"

    @property
    def origin(self) -> str:
        return f"playbook:{self.playbook.name}:step:{self.step_id}"

    def enqueue(
        self,
        *,
        key: str,
        channel: str,
        recipient: str,
        payload: Mapping[str, Any],
        customer_id: int | None,
        expires_at: datetime | None = None,
    ) -> None:
        """An outbox row due now, written with the step's trace (its key already taken:
        nothing new, and the trace says ``duplicate``)."""
        self.tx.writes.enqueue(
            key=key,
            channel=channel,
            recipient=recipient,
            payload=payload,
            due_at=self.now,
            now=self.now,
            customer_id=customer_id,
            expires_at=expires_at,
        )

    async def cap_check(self, customer_id: int) -> CapCheck:
        """Whether one more marketing message to ``customer_id`` fits the frequency cap,
        counting the touches this transaction decided before."""
        cap = self.services.settings.frequency_cap
        if cap is None:
            return CapCheck.of(0, None)
        committed = await self.tx.reads.touches(customer_id, cap=cap, now=self.now)
        return CapCheck.of(committed + self.tx.writes.touches_of(customer_id), cap)

    def touch(self, customer_id: int) -> None:
        """Record a marketing message decided for ``customer_id`` (the cap's ledger)."""
        self.tx.writes.touch(customer_id, source=self.origin, now=self.now)

    async def customer(self) -> TakenCustomer | None:
        return self.loaded_customer

    async def owner(self) -> str | None:
        """The staff member who owns the customer: the enrollment's, else the current owner."""
        if self.enrollment.staff_userid:
            return self.enrollment.staff_userid
        if self.enrollment.customer_id is None:
            return None
        if self._owner is _UNSET:
            self._owner = await owner_of(self.session, self.enrollment.customer_id)
        return self._owner

    async def render(self, content: Content, *, staff_userid: str | None = None) -> str:
        """``content`` rendered for the customer as ``staff_userid`` (default: the owner)
        sees them; the context is :func:`sop.rendering.build_context`'s, from the reads the
        transaction shares."""
        customer = self.loaded_customer
        if customer is None:
            raise LookupError(
                f"enrollment {self.enrollment.id} has no customer: step {self.step_id} of"
                f" {self.playbook.name!r} cannot render a message for it"
            )
        staff = staff_userid or await self.owner()
        reads = await self.tx.reads.customer(customer.id)
        group_id = self.enrollment.group_id
        group = await self.session.get(CustomerGroup, group_id) if group_id is not None else None
        context = await assemble_context(
            self.connection,
            customer,
            reads.relation(staff),
            reads.tags,
            staff_userid=staff,
            playbook_name=self.playbook.name,
            now=self.now,
            zone=self.zone,
            group=group,
            event=self.enrollment.context,
        )
        return self.services.renderer.render(content, context)


StepExecutor = Callable[[StepContext], Awaitable[StepResult]]
