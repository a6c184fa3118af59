"""Tags mirrored to WeCom (``externalcontact/mark_tag``): the toolkit's tags on a customer,
made corp tags on the customer as a staff member sees them.

The engine tags customers locally and enqueues a ``channel = TAG`` row built with
:func:`sop.delivery.messages.mark_tag` (tag names, not ids). This adapter resolves the names
through the corp tag library (:mod:`bot.channels.tag_library`: ``get_corp_tag_list``,
creating missing tags to add with ``add_corp_tag``) and calls ``mark_tag``. Not
customer-facing: marking the same tags twice changes nothing, so an interrupted send is
simply sent again. A tag deleted on the platform since the library was read (40068) makes the
library be read again and the row retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bot.channels.results import result_of
from bot.channels.tag_library import AmbiguousTag, TagLibrary
from bot.wecom import WecomApiError, WecomClient
from sop.clock import Clock
from sop.delivery.channel import OutboxMessage, Outcome, RateKey, SendResult
from sop.delivery.messages import TAG

API = "externalcontact/mark_tag"
#: mark_tag / add_corp_tag: a tag or group id the platform does not know (deleted meanwhile).
INVALID_TAG = 40068


class TagChannel:
    """Mirrors tag changes through ``client`` (an app with customer-contact permission)."""

    customer_facing = False

    def __init__(
        self,
        client: WecomClient,
        clock: Clock,
        *,
        default_group: str = "SCRM",
        fresh_for: timedelta = timedelta(minutes=1),
        name: str = TAG,
    ) -> None:
        self._client = client
        self.library = TagLibrary(client, clock, default_group=default_group, fresh_for=fresh_for)
        self.name = name

    def rate_keys(self, message: OutboxMessage) -> list[RateKey]:
        return [RateKey(f"api:{API}", self._client.credential)]

    def summary(self, message: OutboxMessage) -> str:
        payload = message.payload
        changes = [f"+{n}" for n in payload.get("add", [])]
        changes += [f"-{n}" for n in payload.get("remove", [])]
        return f"tags of {payload.get('external_userid')} by {payload.get('userid')}: " + " ".join(
            changes
        )

    async def send(self, message: OutboxMessage) -> SendResult:
        problem = _malformed(message.payload)
        if problem:
            return SendResult(
                Outcome.PERMANENT,
                error=f"outbox row {message.id}: {problem}; build the payload with"
                " sop.delivery.messages.mark_tag",
            )
        payload = message.payload
        try:
            add = await self.library.ids(payload["add"], create=True)
            remove = await self.library.ids(payload["remove"], create=False)
            if add or remove:
                await self._client.mark_tag(
                    payload["userid"], payload["external_userid"], add=add, remove=remove
                )
        except AmbiguousTag as exc:
            return SendResult(Outcome.PERMANENT, error=str(exc))
        except WecomApiError as exc:
            if exc.errcode == INVALID_TAG:
                self.library.forget()
                return SendResult(
                    Outcome.TRANSIENT, exc.errcode, f"{exc} (tag library read again on retry)"
                )
            return result_of(exc)
        return SendResult.sent({"add_tag": add, "remove_tag": remove})


def _malformed(payload: Mapping[str, Any]) -> str:
    for key in ("userid", "external_userid"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            return f"payload has no {key}"
    for key in ("add", "remove"):
        names = payload.get(key)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return f"payload {key} must be a list of tag names"
    return ""
