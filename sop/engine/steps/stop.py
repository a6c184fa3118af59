"""``stop``: end the enrollment as completed (``stop: "reason"`` records why)."""

from __future__ import annotations

from sop.engine.steps.base import STOP, StepContext, StepResult


async def stop(run: StepContext) -> StepResult:
    reason = run.step.stop if isinstance(run.step.stop, str) else f"stop at step {run.step_id}"
    return StepResult("stopped", {"reason": reason}, goto=STOP)
