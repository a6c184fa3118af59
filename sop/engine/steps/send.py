"""``send``: a message to the customer over a channel the platform really offers.

- ``welcome``: the welcome message of the ``customer_added`` that enrolled the customer, with
  that event's WelcomeCode and only inside its 20-second window (else recorded ``expired``:
  the code cannot be used later, and nothing else may stand in for it).
- ``mass``: a mass message (``add_msg_template``) from the owning staff member, one outbox
  row per customer; the staff member confirms it in their client.
- ``mp``: an Official Account customer-service message to the customer's follower openid,
  inside the 48-hour window opened by their last message.

Marketing playbooks skip opted-out customers (``opted_out``) and respect the frequency cap
shared by all playbooks and campaigns (``capped``); in both cases the enrollment moves on. A
welcome answers the customer's own add and is neither capped nor counted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from sop.delivery.messages import (
    MASS,
    WELCOME,
    mass_to_customers,
    mp_channel,
    mp_window_closes_at,
    text,
    welcome,
    welcome_expires_at,
)
from sop.engine.steps.base import StepContext, StepResult
from sop.engine.taken import TakenCustomer
from sop.playbooks.model import Playbook, SendAction, Step
from store.models import MpFollower


def counts_against_cap(playbook: Playbook, step: Step) -> bool:
    """A marketing send (a welcome answers the customer's own add and is never capped)."""
    return step.send is not None and playbook.marketing and step.send.channel != "welcome"


async def send(run: StepContext) -> StepResult:
    action = run.step.send
    assert action is not None
    customer = await run.customer()
    if customer is None:
        return StepResult("no_customer", {"reason": "the enrollment has no customer to send to"})
    marketing = counts_against_cap(run.playbook, run.step)
    if marketing:
        if customer.opted_out_at is not None:
            reason = f"the customer opted out at {customer.opted_out_at.isoformat()}"
            return StepResult("opted_out", {"reason": reason})
        check = await run.cap_check(customer.id)
        if not check.allowed:
            return StepResult(
                "capped", {"reason": check.reason(run.services.settings.frequency_cap)}
            )
    if action.channel == "welcome":
        result = await _welcome(run, action, customer)
    elif action.channel == "mass":
        result = await _mass(run, action, customer)
    else:
        result = await _mp(run, action, customer)
    if marketing and result.outcome == "done":
        run.touch(customer.id)
    return result


async def _welcome(run: StepContext, action: SendAction, customer: TakenCustomer) -> StepResult:
    code = run.enrollment.context.get("welcome_code")
    expires_at = welcome_expires_at(_added_at(run))
    if not code or not customer.external_userid:
        reason = "the add event carried no WelcomeCode (another welcome is configured in WeCom?)"
        return StepResult("expired", {"reason": reason})
    if run.now >= expires_at:
        reason = f"the WelcomeCode's window closed at {expires_at.isoformat()}"
        return StepResult("expired", {"reason": reason})
    content = await run.render(action)
    payload = welcome(str(code), content, action.attachments)
    return await _enqueue(
        run, WELCOME, customer.external_userid, payload, content, expires_at=expires_at
    )


async def _mass(run: StepContext, action: SendAction, customer: TakenCustomer) -> StepResult:
    sender = await run.owner()
    if sender is None or not customer.external_userid:
        reason = "no owning staff member to send a mass message from"
        if not customer.external_userid:
            reason = "the customer is not a WeCom external contact"
        return StepResult("no_channel", {"reason": reason})
    content = await run.render(action, staff_userid=sender)
    payload = mass_to_customers(
        sender=sender,
        external_userids=[customer.external_userid],
        content=content,
        attachments=action.attachments,
    )
    return await _enqueue(run, MASS, customer.external_userid, payload, content, expires_at=None)


async def _mp(run: StepContext, action: SendAction, customer: TakenCustomer) -> StepResult:
    account = action.account or ""
    follower = (
        await run.session.execute(
            select(MpFollower)
            .where(
                MpFollower.account == account,
                MpFollower.customer_id == customer.id,
                MpFollower.subscribed.is_(True),
            )
            .limit(1)
        )
    ).scalar_one_or_none()
    if follower is None:
        reason = f"the customer does not follow the Official Account {account!r}"
        return StepResult("no_channel", {"reason": reason})
    if follower.last_message_at is None:
        reason = "the follower never wrote: no customer-service window is open"
        return StepResult("expired", {"reason": reason})
    closes = mp_window_closes_at(follower.last_message_at)
    if run.now >= closes:
        reason = f"the 48-hour window closed at {closes.isoformat()}"
        return StepResult("expired", {"reason": reason})
    content = await run.render(action)
    return await _enqueue(
        run, mp_channel(account), follower.openid, text(content), content, expires_at=closes
    )


async def _enqueue(
    run: StepContext,
    channel: str,
    recipient: str,
    payload: dict[str, object],
    content: str,
    *,
    expires_at: datetime | None,
) -> StepResult:
    run.enqueue(
        key=run.key,
        channel=channel,
        recipient=recipient,
        payload=payload,
        customer_id=run.enrollment.customer_id,
        expires_at=expires_at,
    )
    detail = {"text": content, "outbox_key": run.key, "channel": channel, "recipient": recipient}
    return StepResult("done", detail)


def _added_at(run: StepContext) -> datetime:
    """When the customer was added: the event's time if the enrollment kept it."""
    raw = run.enrollment.context.get("added_at") or run.enrollment.context.get("occurred_at")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return run.enrollment.enrolled_at
