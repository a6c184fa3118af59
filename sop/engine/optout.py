"""Opting out of marketing (and back in) by saying a keyword.

A customer who writes exactly an opt-out word (``退订``, ``TD``, ``STOP``; trimmed, any case)
is marked (``customers.opted_out_at``), leaves every running marketing playbook, gets one
confirmation, and the timeline says so. An opt-in word undoes the mark. The words are
consumed here: they do not also trigger keyword playbooks or count as a reply.

The confirmation goes back the way the customer wrote:

* from an Official Account (``mp:<account>``): a customer-service message, allowed because
  the customer's own message has just opened the 48-hour window;
* from WeCom: a one-customer mass message from the owning staff member. WeCom gives an app
  no other way to write to an external contact (welcome messages exist only for the 20
  seconds after an add, app messages reach staff only); the owner confirms the mass message
  in their client, which also keeps a person in the loop for what the customer is told.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sop.delivery import messages
from sop.delivery.outbox import enqueue
from sop.engine import lifecycle
from sop.engine.catalog import Catalog
from sop.engine.enroll import owner_of
from sop.engine.matching import is_customer_message
from sop.engine.reactions import active_enrollments
from sop.events import MessageReceived
from sop.settings import OptOut
from store.models import (
    Customer,
    Direction,
    EnrollmentState,
    Interaction,
    MpFollower,
)

OPTED_OUT = "opted out"


def _said(text: str, words: list[str]) -> bool:
    folded = text.strip().casefold()
    return bool(folded) and any(folded == word.strip().casefold() for word in words)


def says_opt_word(event: MessageReceived, settings: OptOut) -> bool:
    """A customer's message that is an opt-out or opt-in word (what handle_opt_words acts on)."""
    return is_customer_message(event) and (
        _said(event.text, settings.keywords) or _said(event.text, settings.opt_in_keywords)
    )


async def handle_opt_words(
    session: AsyncSession,
    catalog: Catalog,
    event: MessageReceived,
    *,
    settings: OptOut,
    now: datetime,
) -> bool:
    """Act on an opt-out or opt-in word; True when ``event`` was one (and is consumed).

    An opt-in word from a customer who never opted out is an ordinary message (False).
    """
    if not is_customer_message(event) or event.customer_id is None:
        return False
    opting_out = _said(event.text, settings.keywords)
    if not opting_out and not _said(event.text, settings.opt_in_keywords):
        return False
    customer = await session.get(Customer, event.customer_id, with_for_update=True)
    if customer is None:
        return False
    if not opting_out and customer.opted_out_at is None:
        return False
    changed = (customer.opted_out_at is None) == opting_out
    left: list[int] = []
    confirmation: dict[str, Any] = {}
    if changed:
        customer.opted_out_at = now if opting_out else None
        if opting_out:
            left = await _leave_marketing(session, catalog, customer.id, now=now)
        content = settings.confirmation if opting_out else settings.opt_in_confirmation
        confirmation = await _confirm(
            session, customer, event, content, kind="optout" if opting_out else "optin", now=now
        )
    await _record(
        session,
        customer,
        event,
        opting_out=opting_out,
        changed=changed,
        left=left,
        confirmation=confirmation,
        now=now,
    )
    return True


async def _leave_marketing(
    session: AsyncSession, catalog: Catalog, customer_id: int, *, now: datetime
) -> list[int]:
    left: list[int] = []
    for enrollment in await active_enrollments(session, customer_id):
        playbook = await catalog.get_version(session, enrollment.version_id)
        if playbook.marketing:
            await lifecycle.end(
                session, enrollment, state=EnrollmentState.EXITED, reason=OPTED_OUT, now=now
            )
            left.append(enrollment.id)
    return left


async def _confirm(
    session: AsyncSession,
    customer: Customer,
    event: MessageReceived,
    content: str,
    *,
    kind: str,
    now: datetime,
) -> dict[str, Any]:
    """Enqueue the one confirmation; what was enqueued (or why nothing), for the timeline."""
    occurrence = event.inbox_id if event.inbox_id is not None else event.occurred_at.isoformat()
    key = f"{kind}:{customer.id}:{occurrence}"
    if event.source.startswith("mp"):
        account = str(event.data.get("account") or event.source.partition(":")[2])
        openid = event.data.get("openid") or await _openid(session, customer.id, account)
        if not account or not openid:
            return {"skipped": f"no Official Account follower for source {event.source!r}"}
        channel, recipient = messages.mp_channel(account), str(openid)
        payload = messages.text(content)
        expires_at: datetime | None = messages.mp_window_closes_at(event.occurred_at)
    else:
        owner = await owner_of(session, customer.id)
        if owner is None or not customer.external_userid:
            return {"skipped": "no staff member follows the customer to send it"}
        channel, recipient, expires_at = messages.MASS, customer.external_userid, None
        payload = messages.mass_to_customers(
            sender=owner, external_userids=[customer.external_userid], content=content
        )
    await enqueue(
        session,
        key=key,
        channel=channel,
        recipient=recipient,
        payload=payload,
        due_at=now,
        customer_id=customer.id,
        expires_at=expires_at,
        now=now,
    )
    return {"key": key, "channel": channel, "recipient": recipient}


async def _openid(session: AsyncSession, customer_id: int, account: str) -> str | None:
    return await session.scalar(
        select(MpFollower.openid)
        .where(MpFollower.customer_id == customer_id, MpFollower.account == account)
        .limit(1)
    )


async def _record(
    session: AsyncSession,
    customer: Customer,
    event: MessageReceived,
    *,
    opting_out: bool,
    changed: bool,
    left: list[int],
    confirmation: dict[str, Any],
    now: datetime,
) -> None:
    """The timeline entry, after the handler's own entries of the same inbox row."""
    kind = "opted_out" if opting_out else "opted_in"
    if not changed:
        summary = f"said {event.text.strip()!r}: already {kind.replace('_', ' ')}"
    elif opting_out:
        summary = f"opted out of marketing ({event.text.strip()!r}); left {len(left)} playbooks"
    else:
        summary = f"opted back in to marketing ({event.text.strip()!r})"
    seq = 0
    if event.inbox_id is not None:
        last = await session.scalar(
            select(func.max(Interaction.seq)).where(Interaction.inbox_id == event.inbox_id)
        )
        seq = 0 if last is None else last + 1
    session.add(
        Interaction(
            customer_id=customer.id,
            direction=Direction.EVENT,
            kind=kind,
            summary=summary,
            data={
                "text": event.text,
                "changed": changed,
                "enrollments_left": left,
                "confirmation": confirmation,
            },
            source=event.source,
            inbox_id=event.inbox_id,
            seq=seq,
            occurred_at=event.occurred_at,
            recorded_at=now,
        )
    )
