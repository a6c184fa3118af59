"""One agenda row executed: the step (or the timeout decision), its trace, the next move.

Everything here runs inside the row's own transaction (opened by :mod:`sop.engine.runner`),
so the outbox rows, tasks and marketing touches a step creates, its :class:`StepRun`, the row
marked ``done`` and the next agenda row commit together or not at all.

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

from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Executable, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from sop.engine import lifecycle
from sop.engine.agenda import (
    CLOSE,
    Claim,
    TakenEnrollment,
    close,
    finish,
    reacquire,
    release_for_retry,
    take_back,
)
from sop.engine.steps.base import STOP, Services, StepContext, StepResult
from sop.engine.steps.registry import STEPS, TIMEOUTS, WAITS_ON
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
    session: AsyncSession,
    claim: Claim,
    *,
    catalog: VersionSource,
    services: Services,
    now: datetime,
) -> str | None:
    """Run ``claim``'s row if it is still ours; the outcome recorded (None: not ours).

    The hot path talks to the transaction's connection with prebuilt Core statements (take
    back, trace, close, next row): no ORM loading and no flush. Steps that need ORM objects
    (a nudge's task) still use ``session``, in the same transaction."""
    connection = await session.connection()
    taken = await take_back(connection, claim)
    if taken is None:
        return None
    item, enrollment, customer = taken
    if enrollment.state != EnrollmentState.ACTIVE:
        error = f"the enrollment is {enrollment.state.value}"
        await close(connection, item.id, AgendaState.SKIPPED, now=now, error=error)
        return "enrollment_ended"
    playbook = await catalog.get_version(session, enrollment.version_id)
    if not 0 <= item.step_index < len(playbook.steps):
        raise LookupError(
            f"agenda row {item.id} names step {item.step_index + 1} but playbook"
            f" {playbook.name!r} (version {enrollment.version_id}) has {len(playbook.steps)}"
        )
    run = StepContext(
        session, connection, enrollment, playbook, item.step_index, item, now, services, customer
    )
    if item.kind != AgendaKind.STEP:
        waits_on = WAITS_ON[item.kind]
        if item.seq != enrollment.seq or enrollment.waiting.value != waits_on:
            error = "superseded: no longer waiting"
            await close(connection, item.id, AgendaState.SKIPPED, now=now, error=error)
            return "superseded"
        result = await TIMEOUTS[item.kind](run)
    else:
        result = _late(run) or await STEPS[run.step.action](run)
    if not result.wait:
        await advance(
            connection,
            enrollment,
            playbook,
            item.step_index,
            result.goto,
            now=now,
            zone_default=services.zone_default,
        )
    state = AgendaState.SKIPPED if result.outcome == "skipped_late" else AgendaState.DONE
    await record(run, result, state)
    return result.outcome


def _late(run: StepContext) -> StepResult | None:
    grace = run.playbook.catch_up.value
    late_by = run.now - run.item.due_at
    if grace is None or run.step.action not in FACING or late_by <= grace:
        return None
    reason = (
        f"due {run.item.due_at.isoformat()}, late by {late_by}: more than the playbook's"
        f" catch_up ({grace})"
    )
    return StepResult("skipped_late", {"reason": reason})


#: The trace row as a plain Core insert on the transaction's connection: nothing reads it
#: back in the step, so it needs no ORM object, identity or flush (compiled once, cached).
_TRACE = insert(StepRun).values(
    enrollment_id=bindparam("of_enrollment"),
    seq=bindparam("trace_seq"),
    step_id=bindparam("trace_step_id"),
    action=bindparam("trace_action"),
    due_at=bindparam("trace_due_at"),
    ran_at=bindparam("now"),
    outcome=bindparam("trace_outcome"),
    detail=bindparam("trace_detail"),
)
#: On PostgreSQL a step's writes are one statement (data-modifying CTEs run exactly once,
#: whether or not the outer statement reads them): the row closed, the trace, and, if the
#: step scheduled one, the enrollment's ``seq``/``waiting`` and the next agenda row.
_RECORD_PG = lifecycle.NEXT.add_cte(
    CLOSE.cte("closed"), _TRACE.cte("traced"), lifecycle.BUMP.cte("bumped")
)
_RECORD_PG_LAST = _TRACE.add_cte(CLOSE.cte("closed"))


async def record(run: StepContext, result: StepResult, state: AgendaState) -> None:
    """Write what ``run`` did, in the row's transaction: its step-run trace, its row closed
    (``state``), and the next row the step or :func:`advance` scheduled, if any, with the
    enrollment's new ``seq`` and ``waiting``. One round trip on PostgreSQL; on SQLite (no
    data-modifying CTEs) the statements run one after the other in one greenlet hop."""
    params = _trace_params(run, result) | {
        "agenda_id": run.item.id,
        "new_state": state,
        "error": None,
    }
    scheduled = run.enrollment.scheduled is not None
    if scheduled:
        params |= lifecycle.scheduled_params(run.enrollment)
    connection = run.connection
    if connection.dialect.name == "postgresql":
        await connection.execute(_RECORD_PG if scheduled else _RECORD_PG_LAST, params)
        return
    statements = (_TRACE, CLOSE, lifecycle.BUMP, lifecycle.NEXT) if scheduled else (_TRACE, CLOSE)
    await connection.run_sync(_run_all, statements, params)


def _run_all(
    connection: Connection, statements: tuple[Executable, ...], params: dict[str, Any]
) -> None:
    for statement in statements:
        connection.execute(statement, params)


def _trace_params(run: StepContext, result: StepResult) -> dict[str, Any]:
    detail: dict[str, Any] = {"kind": run.item.kind.value, **result.detail}
    if run.item.attempts > 1:
        detail["attempt"] = run.item.attempts
    return {
        "of_enrollment": run.enrollment.id,
        "trace_seq": run.item.seq,
        "trace_step_id": run.step_id,
        "trace_action": run.step.action,
        "trace_due_at": run.item.due_at,
        "now": run.now,
        "trace_outcome": result.outcome,
        "trace_detail": detail,
    }


async def advance(
    connection: AsyncConnection,
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
        await lifecycle.end_taken(
            connection, enrollment, state=EnrollmentState.COMPLETED, reason=reason, now=now
        )
        return
    index = playbook.step_index(target) if target is not None else from_index + 1
    if index >= len(playbook.steps):
        reason = f"ran past the last step ({playbook.step_id(from_index)})"
        await lifecycle.end_taken(
            connection, enrollment, state=EnrollmentState.COMPLETED, reason=reason, now=now
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
    claim: Claim,
    error: str,
    *,
    catalog: VersionSource,
    now: datetime,
    max_attempts: int,
    retry_at: datetime,
    permanent: bool = False,
) -> bool:
    """After a step raised (its transaction rolled back): keep the error on the row and retry
    at ``retry_at``, or, on the last attempt (or a ``permanent`` error, such as a template
    that cannot render this customer), fail the enrollment with it. True if failed."""
    enrollment = await lock_enrollment(session, claim.enrollment_id)
    item = await reacquire(session, claim)
    if item is None or enrollment is None:
        return False
    step_id, action = str(item.step_index + 1), "?"
    try:
        playbook = await catalog.get_version(session, enrollment.version_id)
        step_id, action = playbook.step_id(item.step_index), playbook.steps[item.step_index].action
    except (LookupError, ValueError, IndexError):
        pass
    final = permanent or claim.attempts >= max_attempts
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
                "attempt": claim.attempts,
                "of": max_attempts,
                **({} if final else {"retry_at": retry_at.isoformat()}),
            },
        )
    )
    if not final:
        release_for_retry(item, now=now, retry_at=retry_at, error=error)
        return False
    finish(item, AgendaState.SKIPPED, now=now, error=error)
    reason = f"step {step_id} ({action}) failed {claim.attempts} times; last error: {error}"
    await lifecycle.end(session, enrollment, state=EnrollmentState.FAILED, reason=reason, now=now)
    return True


def backoff(attempts: int, *, base: timedelta, most: timedelta) -> timedelta:
    """Exponential backoff after ``attempts`` failed attempts: base, 2 base, 4 base, ..."""
    delay: timedelta = base * (2 ** max(0, attempts - 1))
    return min(most, delay)
