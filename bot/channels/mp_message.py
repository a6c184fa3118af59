"""Official Account customer-service messages (``message/custom/send``) to a follower.

The platform lets an Official Account answer a follower only within 48 hours of the
follower's last message, and only 5 times in that window. The channel checks both against
the store before it calls: ``MpFollower.last_message_at`` (kept by the callback handlers)
opens the window, and the rows this channel sent to the follower since then use the quota.
A row outside the window, or over the quota, is recorded ``expired`` with that reason and
never sent; the platform's own 45015 (outside the window) and 45047 (quota used), which
can still come back (a message the callback has not delivered yet, several rows in one
batch), are recorded the same way. Customer-facing, hence at-most-once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.results import result_of
from bot.wechat_mp import MpApiError, MpClient
from bot.wechat_mp.client import CUSTOM_SEND
from bot.wechat_mp.errors import OUTSIDE_WINDOW, QUOTA_USED
from sop.clock import Clock
from sop.delivery.channel import OutboxMessage, Outcome, RateKey, SendResult
from sop.delivery.messages import MP_REPLY_QUOTA, mp_channel, mp_window_closes_at, summarize
from store.models import MpFollower, OutboxRow, OutboxState

#: The follower unsubscribed: the platform answers 43004 (require subscribe).
NOT_SUBSCRIBED = 43004


class MpMessageChannel:
    """Sends as the Official Account ``account`` (its config name) through ``client``.

    Rows carry ``channel = mp_channel(account)`` and the follower's openid as recipient.
    """

    customer_facing = True

    def __init__(
        self,
        client: MpClient,
        account: str,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        quota: int = MP_REPLY_QUOTA,
    ) -> None:
        self._client = client
        self._account = account
        self._sessions = sessions
        self._clock = clock
        self._quota = quota
        self.name = mp_channel(account)

    def rate_keys(self, message: OutboxMessage) -> list[RateKey]:
        return [RateKey(f"api:{CUSTOM_SEND}", self._client.credential)]

    def summary(self, message: OutboxMessage) -> str:
        return f"official account {self._account}: {summarize(dict(message.payload))}"

    async def send(self, message: OutboxMessage) -> SendResult:
        refusal = await self._refusal(message.recipient)
        if refusal is not None:
            return refusal
        try:
            await self._client.send_custom_message(message.recipient, dict(message.payload))
        except MpApiError as exc:
            if exc.errcode in (OUTSIDE_WINDOW, QUOTA_USED):
                return SendResult(Outcome.EXPIRED, exc.errcode, str(exc))
            return result_of(exc)
        return SendResult.sent({"openid": message.recipient})

    async def _refusal(self, openid: str) -> SendResult | None:
        """Why the platform would refuse a message to ``openid`` now, or None."""
        async with self._sessions() as session:
            follower = await session.scalar(
                select(MpFollower).where(
                    MpFollower.account == self._account, MpFollower.openid == openid
                )
            )
            if follower is None:
                return SendResult(
                    Outcome.PERMANENT,
                    error=f"{openid!r} is not a known follower of Official Account"
                    f" {self._account!r}",
                )
            if not follower.subscribed:
                return SendResult(
                    Outcome.PERMANENT,
                    NOT_SUBSCRIBED,
                    f"{openid!r} no longer follows Official Account {self._account!r}",
                )
            last = follower.last_message_at
            now = self._clock.now()
            if last is None:
                return SendResult(
                    Outcome.EXPIRED,
                    error=f"outside the 48-hour window: {openid!r} never wrote to"
                    f" {self._account!r}",
                )
            if now >= mp_window_closes_at(last):
                return SendResult(
                    Outcome.EXPIRED,
                    error="outside the 48-hour window: the follower last wrote at"
                    f" {last.isoformat()}, the window closed at"
                    f" {mp_window_closes_at(last).isoformat()}",
                )
            used = await self._sent_since(session, openid, last)
        if used >= self._quota:
            return SendResult(
                Outcome.EXPIRED,
                error=f"quota used: {used} of {self._quota} messages sent since the follower"
                f" last wrote at {last.isoformat()}; the next message from them reopens it",
            )
        return None

    async def _sent_since(self, session: AsyncSession, openid: str, since: datetime) -> int:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(
                OutboxRow.channel == self.name,
                OutboxRow.recipient == openid,
                OutboxRow.state == OutboxState.SENT,
                OutboxRow.sent_at >= since,
            )
        )
        return int(count or 0)
