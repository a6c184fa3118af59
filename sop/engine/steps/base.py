"""What a step executor receives and returns.

An executor is one async function per step type (``send``, ``nudge``, ...), registered in
:mod:`sop.engine.steps.registry`. It gets a :class:`StepContext` (the session of the row's
transaction, the enrollment, its playbook version, the step, the time) and returns a
:class:`StepResult`: what happened (written to the step-run trace) and where the enrollment
goes next. Executors never commit, never schedule the next step themselves (the executor
module does, from ``goto``/``wait``) and never talk to the platform: they write outbox rows,
tasks and tags in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from sop.engine.agenda import TakenCustomer, TakenEnrollment, TakenRow
from sop.engine.enroll import owner_of
from sop.playbooks.model import Content, Playbook, Step
from sop.rendering.context import CustomerFields
from sop.settings import SopSettings

#: A branch target that ends the enrollment (``goto: stop``, ``then: stop``).
STOP = "stop"


class Renderer(Protocol):
    """Renders a message body (inline text or a library template) with a context."""

    def render(self, content: Content, context: Mapping[str, Any]) -> str: ...


class ContextBuilder(Protocol):
    """Builds the template variables of one customer (``sop.rendering.build_context``)."""

    async def __call__(
        self,
        session: AsyncSession,
        *,
        customer_id: int,
        staff_userid: str | None,
        playbook_name: str,
        now: datetime,
        zone: ZoneInfo,
        group_id: int | None = None,
        event: Mapping[str, Any] | None = None,
        customer: CustomerFields | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Services:
    """What every step may use besides the database: built once by the engine."""

    renderer: Renderer
    build_context: ContextBuilder
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
    them in one statement (plain values, not ORM objects), the session of the row's
    transaction and its connection (for Core statements; same transaction). The owner is
    read at most once per step, however many helpers of a step ask for it."""

    session: AsyncSession
    connection: AsyncConnection
    enrollment: TakenEnrollment
    playbook: Playbook
    index: int
    item: TakenRow
    now: datetime
    services: Services
    loaded_customer: TakenCustomer | None = field(repr=False)
    _owner: str | None = field(default=_UNSET, init=False, repr=False)

    @property
    def step(self) -> Step:
        return self.playbook.steps[self.index]

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
        if self.enrollment.customer_id is None:
            raise LookupError(
                f"enrollment {self.enrollment.id} has no customer: step {self.step_id} of"
                f" {self.playbook.name!r} cannot render a message for it"
            )
        context = await self.services.build_context(
            self.session,
            customer_id=self.enrollment.customer_id,
            staff_userid=staff_userid or await self.owner(),
            playbook_name=self.playbook.name,
            now=self.now,
            zone=self.zone,
            group_id=self.enrollment.group_id,
            event=self.enrollment.context,
            customer=self.loaded_customer,
        )
        return self.services.renderer.render(content, context)


StepExecutor = Callable[[StepContext], Awaitable[StepResult]]
