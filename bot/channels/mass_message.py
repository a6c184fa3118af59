"""Mass messages (``externalcontact/add_msg_template``) to customers or customer groups.

The platform does not deliver a mass message when it accepts it: it creates a task that the
sending staff member confirms in their client, and only then does each recipient get it (or
not: no longer a contact, over the receiving limit). So ``sent`` on the outbox row means
"accepted, task created"; right after the platform answers, the channel records a
:class:`~store.models.MassJob` with every recipient pending (or ``not_a_contact`` when the
answer's ``fail_list`` names it), and the collector (:mod:`bot.channels.mass_results`) follows
the task until each recipient is settled.

Rows come in two shapes, both with a payload from :func:`sop.delivery.messages.mass_to_customers`
or :func:`~sop.delivery.messages.mass_to_groups`: the engine's, one customer each
(``recipient`` is that external userid), and campaigns', one per owning staff member with
many recipients (``recipient`` is the sender's userid). Customer-facing: at-most-once. An
uncertain row is settled by looking for the message in the platform's list of mass messages
(:mod:`bot.channels.mass_settle`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.mass_settle import SETTLE_AFTER, find_created
from bot.channels.mass_store import Accepted, record_accepted
from bot.channels.results import result_of
from bot.wecom import WecomApiError, WecomClient
from sop.campaigns.control import withdrawal_wanted
from sop.clock import Clock
from sop.delivery.channel import OutboxMessage, Outcome, RateKey, SendResult, Settlement
from sop.delivery.messages import MASS, mass_recipients, summarize

log = logging.getLogger(__name__)

API = "externalcontact/add_msg_template"
#: No staff member confirms a task within seconds: the first look at the results waits.
FIRST_POLL = timedelta(minutes=5)


class MassMessageChannel:
    customer_facing = True
    settle_after = SETTLE_AFTER

    def __init__(
        self,
        client: WecomClient,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        first_poll: timedelta = FIRST_POLL,
        name: str = MASS,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._clock = clock
        self._first_poll = first_poll
        self.name = name

    def rate_keys(self, message: OutboxMessage) -> list[RateKey]:
        return [
            RateKey(f"api:{API}", self._client.credential),
            RateKey(f"member:{API}", str(message.payload.get("sender", ""))),
        ]

    def summary(self, message: OutboxMessage) -> str:
        payload = dict(message.payload)
        count = len(mass_recipients(payload))
        what = "groups" if payload.get("chat_type") == "group" else "customers"
        audience = f", {count} {what}" if count > 1 else ""
        sender = payload.get("sender", "?")
        return f"mass message for {sender} to confirm{audience}: {summarize(payload)}"

    async def send(self, message: OutboxMessage) -> SendResult:
        payload = dict(message.payload)
        sender = str(payload.get("sender") or "")
        recipients = mass_recipients(payload)
        if not sender:
            return SendResult(
                Outcome.PERMANENT,
                error=f"outbox row {message.id}: mass message payload has no sender; build it"
                " with sop.delivery.messages.mass_to_customers or mass_to_groups",
            )
        if message.recipient != sender and message.recipient not in recipients:
            return SendResult(
                Outcome.PERMANENT,
                error=f"outbox row {message.id}: recipient {message.recipient!r} is neither the"
                f" sender {sender!r} nor one of the payload's {len(recipients)} recipients",
            )
        try:
            answer = await self._client.add_msg_template(payload)
        except WecomApiError as exc:
            return result_of(exc)
        msgid = str(answer.get("msgid") or "")
        fail_list = [str(item) for item in answer.get("fail_list") or []]
        if not msgid:
            return SendResult(
                Outcome.UNCERTAIN,
                error="WeCom accepted the mass message but answered no msgid: check the"
                " admin console's mass messages (客户群发) before resending",
            )
        ids: dict[str, object] = {"msgid": msgid, "fail_list": fail_list}
        error = await self._track(message, payload, msgid, fail_list)
        if error:
            ids["tracking_error"] = error
        return SendResult.sent(ids)

    async def settle(self, message: OutboxMessage, attempted_at: datetime) -> Settlement:
        """Look for the message the attempt may have created; follow it if it did."""
        payload = dict(message.payload)
        settlement, found = await find_created(
            self._client, self._sessions, message, attempted_at, self._clock.now()
        )
        if found is None:
            return settlement
        held = set(found.held)
        recipients = mass_recipients(payload)
        single = payload.get("chat_type", "single") != "group"
        fail_list = [r for r in recipients if r not in held] if single else []
        ids: dict[str, object] = {"msgid": found.msgid, "fail_list": fail_list}
        error = await self._track(message, payload, found.msgid, fail_list)
        if error:
            ids["tracking_error"] = error
        return Settlement(settlement.verdict, settlement.reason, ids)

    async def _track(
        self, message: OutboxMessage, payload: dict[str, object], msgid: str, fail_list: list[str]
    ) -> str:
        """Record the job the collector follows; the error, if that failed (the message is
        out: never turn that into a resend)."""
        sender = str(payload.get("sender") or "")
        recipients = mass_recipients(payload)
        accepted = Accepted(
            outbox_id=message.id,
            msgid=msgid,
            sender=sender,
            chat_type=str(payload.get("chat_type") or "single"),
            recipients=recipients,
            fail_list=fail_list,
            summary=summarize(payload),
            customer_id=message.customer_id,
            single_recipient=message.recipient if message.recipient != sender else None,
        )
        now = self._clock.now()
        try:
            async with self._sessions.begin() as session:
                await record_accepted(
                    session,
                    accepted,
                    now=now,
                    first_poll_at=now + self._first_poll,
                    withdraw=await withdrawal_wanted(session, message.key),
                )
        except Exception as exc:
            log.exception(
                "mass message %s (outbox row %s): results not tracked", msgid, message.id
            )
            return f"{type(exc).__name__}: {exc}"
        return ""
