"""``wait_for_reply``: sleep until the customer says something, or the timeout passes.

The step marks the enrollment ``Waiting.REPLY`` and puts a ``reply_timeout`` row on the
agenda at ``now + timeout``. A reply (handled on the event, by the enrollment side) cancels
that row and moves the enrollment to ``on_reply``; if the timeout row runs first, the
enrollment goes to ``on_timeout`` (or the next step). The engine runs a timeout row only if
the enrollment is still waiting on it, so the two cannot both decide.
"""

from __future__ import annotations

from sop.engine import lifecycle
from sop.engine.steps.base import StepContext, StepResult
from store.models import AgendaKind, Waiting


async def wait_for_reply(run: StepContext) -> StepResult:
    action = run.step.wait_for_reply
    assert action is not None
    timeout_at = run.now + action.timeout
    run.enrollment.waiting = Waiting.REPLY
    lifecycle.schedule_taken(
        run.enrollment,
        step_index=run.index,
        due_at=timeout_at,
        kind=AgendaKind.REPLY_TIMEOUT,
    )
    detail = {"timeout_at": timeout_at.isoformat(), "keywords": list(action.keywords)}
    return StepResult("waiting", detail, wait=True)


async def reply_timeout(run: StepContext) -> StepResult:
    action = run.step.wait_for_reply
    assert action is not None
    run.enrollment.waiting = Waiting.NONE
    return StepResult("timeout", {"branch": action.on_timeout or "next"}, goto=action.on_timeout)
