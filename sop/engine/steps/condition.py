"""``if``: branch on audience conditions about the customer, as they hold now.

``then`` / ``else`` name the step to go to (or ``stop``); a missing branch goes on to the next
step. The same conditions as a playbook's ``audience`` and as campaigns, evaluated with the
same SQL (:func:`sop.audience.query.customer_matches`).
"""

from __future__ import annotations

from sop.audience.query import customer_matches
from sop.engine.steps.base import StepContext, StepResult


async def condition(run: StepContext) -> StepResult:
    audience = run.step.if_
    assert audience is not None
    customer_id = run.enrollment.customer_id
    matched = customer_id is not None and await customer_matches(
        run.session, audience, customer_id, now=run.now
    )
    target = run.step.then if matched else run.step.else_
    branch = "then" if matched else "else"
    return StepResult(
        "branch", {"matched": matched, "branch": branch, "to": target or "next"}, goto=target
    )
