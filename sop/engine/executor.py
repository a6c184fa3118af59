"""One agenda row executed: the step (or the timeout decision), its trace, the next move.

Everything here runs inside an engine transaction (opened by :mod:`sop.engine.runner` for
the rows of a claim, or for one row), so the outbox rows, tasks and marketing touches a step
creates, its :class:`StepRun`, the row marked ``done`` and the next agenda row commit
together or not at all.

Rules the operator can rely on (docs/playbooks.md):

- a row of an enrollment that has ended is skipped; a timeout row runs only while the
  enrollment still waits on it (a reply or a finished task may have moved it on meanwhile);
- catch-up: a ``send`` or ``nudge`` row late by more than the playbook's ``catch_up`` (the
  engine was down) is recorded ``skipped_late`` and the enrollment moves on. Control steps
  (``if``, ``goto``, ``stop``, tags, waits) always run: skipping them would change the path,
  not just drop a stale message;
- the next step falls due by its ``after``/``at`` from now, in the playbook's zone; quiet
  hours move customer- and staff-facing steps (``send``, ``nudge``) to their end;
- running past the last step (or ``stop``) completes the enrollment;
- a step that raises keeps its error on the row and is retried with backoff; after the last
  attempt the enrollment is ``failed`` with that error (see :func:`record_failure`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.engine import lifecycle
from sop.engine.agenda import finish, lock_due, release_for_retry
from sop.engine.steps.base import STOP, Services, StepContext, StepResult
from sop.engine.steps.registry import STEPS, TIMEOUTS, WAITS_ON
from sop.engine.steps.send import counts_against_cap
from sop.engine.taken import Taken, TakenEnrollment
from sop.engine.transaction import Transaction
from sop.engine.writes import TransactionWrites
from sop.playbooks.model import Playbook
from sop.playbooks.timing import step_due_at
from store.models import (
    AgendaKind,
    AgendaState,
    Enrollment,
    EnrollmentState,
    StepRun,
)

#: Actions whose timing respects quiet hours and whose stale rows catch-up may skip.
FACING = frozenset({"send", "nudge"})


class VersionSource(Protocol):
    """Where the definition an enrollment runs comes from (:class:`sop.engine.catalog.Catalog`)."""

    async def get_version(self, session: AsyncSession, version_id: int) -> Playbook: ...


async def lock_enrollment(session: AsyncSession, enrollment_id: int) -> Enrollment | None:
    return (
        await session.execute(
            select(Enrollment)
            .where(Enrollment.id == enrollment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def execute(
    run_in: Transaction,
    taken: Taken,
    *,
    catalog: VersionSource,
    services: Services,
    now: datetime,
) -> str:
    """Run one taken row (:func:`sop.engine.agenda.claim`) in ``run_in``; the outcome.

    Its writes go to ``run_in.writes`` and reach the database with the transaction's other
    steps (:meth:`TransactionWrites.flush`). Steps that need ORM objects (a nudge's task)
    use ``run_in.session``, in the same transaction."""
    item, enrollment, customer = taken
    writes = run_in.writes
    if enrollment.state != EnrollmentState.ACTIVE:
        error = f"the enrollment is {enrollment.state.value}"
        writes.close(item.id, AgendaState.SKIPPED, now=now, error=error)
        return "enrollment_ended"
    playbook = await catalog.get_version(run_in.session, enrollment.version_id)
    if not 0 <= item.step_index < len(playbook.steps):
        raise LookupError(
            f"agenda row {item.id} names step {item.step_index + 1} but playbook"
            f" {playbook.name!r} (version {enrollment.version_id}) has {len(playbook.steps)}"
        )
    run = StepContext(
        run_in,
        enrollment,
        playbook,
        item.step_index,
        item,
        now,
        services,
        customer,
    )
    if item.kind != AgendaKind.STEP:
        waits_on = WAITS_ON[item.kind]
        if item.seq != enrollment.seq or enrollment.waiting.value != waits_on:
            writes.close(
                item.id, AgendaState.SKIPPED, now=now, error="superseded: no longer waiting"
            )
            return "superseded"
        result = await TIMEOUTS[item.kind](run)
    else:
        result = _late(run) or await STEPS[run.action](run)
    if not result.wait:
        advance(
            writes,
            enrollment,
            playbook,
            item.step_index,
            result.goto,
            now=now,
            zone_default=services.zone_default,
        )
    state = AgendaState.SKIPPED if result.outcome == "skipped_late" else AgendaState.DONE
    record(run, result, state)
    return result.outcome


async def capped_customers(
    session: AsyncSession, taken: Iterable[Taken], *, catalog: VersionSource
) -> set[int]:
    """The customers of ``taken`` rows whose step is a marketing send (what the frequency
    cap counts), so the transaction counts their touches in one statement."""
    capped: set[int] = set()
    for item, enrollment, customer in taken:
        if customer is None or item.kind != AgendaKind.STEP:
            continue
        playbook = await catalog.get_version(session, enrollment.version_id)
        steps = playbook.steps
        if item.step_index < len(steps) and counts_against_cap(playbook, steps[item.step_index]):
            capped.add(customer.id)
    return capped


def _late(run: StepContext) -> StepResult | None:
    grace = run.playbook.catch_up.value
    late_by = run.now - run.item.due_at
    if grace is None or run.action not in FACING or late_by <= grace:
        return None
    reason = (
        f"due {run.item.due_at.isoformat()}, late by {late_by}: more than the playbook's"
        f" catch_up ({grace})"
    )
    return StepResult("skipped_late", {"reason": reason})


def record(run: StepContext, result: StepResult, state: AgendaState) -> None:
    """Queue what ``run`` did with the transaction's writes: its step-run trace, its row
    closed (``state``), and the next row the step or :func:`advance` scheduled, if any, with
    the enrollment's new ``seq`` and ``waiting``."""
    writes = run.tx.writes
    scheduled = None
    if run.enrollment.scheduled is not None:
        scheduled = lifecycle.scheduled_params(run.enrollment)
    writes.step(_trace_params(run, result), run.item.id, state, scheduled)


def _trace_params(run: StepContext, result: StepResult) -> dict[str, Any]:
    detail: dict[str, Any] = {"kind": run.item.kind.value, **result.detail}
    if run.item.attempt > 1:
        detail["attempt"] = run.item.attempt
    return {
        "of_enrollment": run.enrollment.id,
        "trace_seq": run.item.seq,
        "trace_step_id": run.step_id,
        "trace_action": run.action,
        "trace_due_at": run.item.due_at,
        "now": run.now,
        "trace_outcome": result.outcome,
        "trace_detail": detail,
    }


def advance(
    writes: TransactionWrites,
    enrollment: TakenEnrollment,
    playbook: Playbook,
    from_index: int,
    target: str | None,
    *,
    now: datetime,
    zone_default: str,
) -> None:
    """Move ``enrollment`` on from step ``from_index``: to ``target`` (a step id, ``stop``)
    or the next step; schedule it (written by :func:`record`), or complete the enrollment."""
    if target == STOP:
        reason = f"stop at step {playbook.step_id(from_index)}"
        lifecycle.end_taken(
            writes, enrollment, state=EnrollmentState.COMPLETED, reason=reason, now=now
        )
        return
    index = playbook.step_index(target) if target is not None else from_index + 1
    if index >= len(playbook.steps):
        reason = f"ran past the last step ({playbook.step_id(from_index)})"
        lifecycle.end_taken(
            writes, enrollment, state=EnrollmentState.COMPLETED, reason=reason, now=now
        )
        return
    step = playbook.steps[index]
    due_at = step_due_at(
        base=now,
        after=step.after,
        at=step.at,
        zone=playbook.zone(zone_default),
        quiet=playbook.quiet_hours if step.action in FACING else None,
    )
    lifecycle.schedule_taken(enrollment, step_index=index, due_at=due_at)


async def record_failure(
    session: AsyncSession,
    agenda_id: int,
    error: str,
    *,
    catalog: VersionSource,
    now: datetime,
    max_attempts: int,
    retry_after: Callable[[int], timedelta],
    permanent: bool = False,
) -> Enrollment | None:
    """After a step raised (its transaction rolled back): keep the error on the row and retry
    it ``retry_after(attempt)`` later, or, on the last attempt (or a ``permanent`` error,
    such as a template that cannot render this customer), fail the enrollment with it. The
    enrollment if it failed."""
    item = await lock_due(session, agenda_id, now=now)
    if item is None:
        return None
    enrollment = await lock_enrollment(session, item.enrollment_id)
    if enrollment is None:
        return None
    step_id, action = str(item.step_index + 1), "?"
    try:
        playbook = await catalog.get_version(session, enrollment.version_id)
        step_id, action = playbook.step_id(item.step_index), playbook.steps[item.step_index].action
    except (LookupError, ValueError, IndexError):
        pass
    attempt = item.attempts + 1
    final = permanent or attempt >= max_attempts
    retry_at = now + retry_after(attempt)
    session.add(
        StepRun(
            enrollment_id=enrollment.id,
            seq=item.seq,
            step_id=step_id,
            action=action,
            due_at=item.due_at,
            ran_at=now,
            outcome="failed" if final else "error",
            detail={
                "kind": item.kind.value,
                "error": error,
                "attempt": attempt,
                "of": max_attempts,
                **({} if final else {"retry_at": retry_at.isoformat()}),
            },
        )
    )
    if not final:
        release_for_retry(item, now=now, retry_at=retry_at, error=error)
        return None
    item.attempts = attempt
    finish(item, AgendaState.SKIPPED, now=now, error=error)
    reason = f"step {step_id} ({action}) failed {attempt} times; last error: {error}"
    await lifecycle.end(session, enrollment, state=EnrollmentState.FAILED, reason=reason, now=now)
    return enrollment


def backoff(attempts: int, *, base: timedelta, most: timedelta) -> timedelta:
    """Exponential backoff after ``attempts`` failed attempts: base, 2 base, 4 base, ..."""
    delay: timedelta = base * (2 ** max(0, attempts - 1))
    return min(most, delay)
