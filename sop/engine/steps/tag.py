"""``tag`` / ``untag``: corp tags on the customer, mirrored to WeCom through the outbox.

The step queues one ``TAG`` row (``mark_tag`` with tag names; the channel adapter resolves
them in the corp tag library and creates missing ones), as the owning staff member sees the
customer. The row commits with the step, and the platform's answer is in the outbox; the
local tag rows follow from WeCom's own change callback, like any other tag change.
"""

from __future__ import annotations

from sop.delivery.messages import TAG, mark_tag
from sop.engine.steps.base import StepContext, StepResult


async def tag(run: StepContext) -> StepResult:
    names = run.step.tag
    assert names is not None
    return await _mirror(run, add=names, remove=[])


async def untag(run: StepContext) -> StepResult:
    names = run.step.untag
    assert names is not None
    return await _mirror(run, add=[], remove=names)


async def _mirror(run: StepContext, *, add: list[str], remove: list[str]) -> StepResult:
    customer = await run.customer()
    if customer is None or not customer.external_userid:
        reason = "the enrollment has no WeCom customer to tag"
        return StepResult("no_customer", {"reason": reason, "add": add, "remove": remove})
    staff = await run.owner()
    if staff is None:
        reason = "the customer has no owning staff member (corp tags are set through one)"
        return StepResult("no_staff", {"reason": reason, "add": add, "remove": remove})
    payload = mark_tag(
        userid=staff, external_userid=customer.external_userid, add=add, remove=remove
    )
    run.enqueue(
        key=run.key,
        channel=TAG,
        recipient=customer.external_userid,
        payload=payload,
        customer_id=customer.id,
    )
    return StepResult("done", {"add": add, "remove": remove, "outbox_key": run.key})
