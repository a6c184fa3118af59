"""``goto``: jump to a step by id (``goto: stop`` ends the enrollment)."""

from __future__ import annotations

from sop.engine.steps.base import StepContext, StepResult


async def goto(run: StepContext) -> StepResult:
    target = run.step.goto
    assert target is not None
    return StepResult("branch", {"branch": target}, goto=target)
