"""Who in a batch of the audience gets the campaign, from which staff member, in which variant.

``plan`` (counting) and the fan-out (writing) ask the same question of the same batches, so
it is answered once, set-based: one statement per batch reads the next audience members with
their address, owner, opt-out and frequency-cap facts as correlated subqueries (served by the
``customer_staff`` and ``marketing_touches (customer_id, at)`` indexes), never one query per
customer (Official Account campaigns add one query for the followers).

Each recipient gets at most one exclusion reason, the first that applies, in this order:
``opted_out``, then what the channel needs (``no_owner`` for mass and staff tasks,
``not_a_follower`` / ``outside_48h_window`` for Official Account messages), then
``messaged_recently`` (``exclude_messaged_within``), then ``capped`` (the frequency cap shared
with playbooks, counted on the ``marketing_touches`` ledger).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, ScalarSelect, exists, false, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sop.audience.query import audience_select
from sop.campaigns.model import Campaign
from sop.delivery.messages import MP_REPLY_WINDOW
from sop.settings import FrequencyCap
from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    FollowState,
    MarketingTouch,
    MpFollower,
)

OPTED_OUT = "opted_out"
NO_OWNER = "no_owner"
NOT_A_FOLLOWER = "not_a_follower"
OUTSIDE_WINDOW = "outside_48h_window"
MESSAGED_RECENTLY = "messaged_recently"
CAPPED = "capped"


@dataclass(frozen=True)
class Decision:
    """One recipient of a run: ``recipient`` is ``c<customer id>`` or ``g<group id>``;
    ``address`` what the platform addresses (external userid, openid, chat id)."""

    recipient: str
    customer_id: int | None
    group_id: int | None
    address: str | None
    owner: str | None
    variant: str
    excluded: str | None = None

    @property
    def position(self) -> int:
        """The audience row's id: the keyset cursor after this recipient."""
        position = self.customer_id if self.customer_id is not None else self.group_id
        assert position is not None
        return position


def variant_of(campaign: Campaign, recipient: str) -> str:
    """The variant a recipient gets: a stable hash of campaign and recipient into 10,000
    buckets, cut by the splits. The same customer gets the same variant in every run."""
    bodies = campaign.bodies()
    digest = hashlib.blake2b(f"{campaign.name}:{recipient}".encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % 10_000
    edge = 0
    for name, split, _content in bodies:
        edge += split * 100
        if bucket < edge:
            return name
    return bodies[-1][0]


async def decide_batch(
    session: AsyncSession,
    campaign: Campaign,
    *,
    after_id: int | None,
    limit: int,
    cap: FrequencyCap | None,
    now: datetime,
) -> list[Decision]:
    """The next ``limit`` members of the audience after ``after_id`` (customers, or groups
    for group_mass), decided, in id order; empty when the audience is exhausted."""
    if campaign.channel == "group_mass":
        return await _groups(session, campaign, after_id=after_id, limit=limit)
    statement = audience_select(campaign.audience, now=now, after_id=after_id, limit=limit)
    columns = (
        Customer.id,
        Customer.external_userid,
        Customer.opted_out_at,
        _owner(campaign).label("owner"),
        _recent(campaign, now).label("recent"),
        _capped(cap if campaign.frequency_cap else None, now).label("capped"),
    )
    async with _custom_plan(session):
        rows = (await session.execute(statement.with_only_columns(*columns))).all()
    ids = [row.id for row in rows]
    followers = await _followers(session, campaign, ids, now) if campaign.channel == "mp" else {}
    decisions = []
    for cid, external, opted_out_at, owner, recent, capped in rows:
        address = external
        if campaign.channel == "mp":
            address, reason = followers.get(cid, (None, NOT_A_FOLLOWER))
        else:
            reason = None if owner is not None and external else NO_OWNER
        if opted_out_at is not None:
            reason = OPTED_OUT
        elif reason is None and recent:
            reason = MESSAGED_RECENTLY
        elif reason is None and capped:
            reason = CAPPED
        recipient = f"c{cid}"
        decisions.append(
            Decision(recipient, cid, None, address, owner, variant_of(campaign, recipient), reason)
        )
    return decisions


@asynccontextmanager
async def _custom_plan(session: AsyncSession) -> AsyncIterator[None]:
    """On PostgreSQL, plan the statements inside for their parameters every time.

    asyncpg prepares statements, and PostgreSQL switches a prepared statement to a generic
    plan after five runs. The fan-out itself fills ``marketing_touches``: a generic plan made
    while the ledger was small scans it whole for each customer of every later batch
    (measured: 10,000 customers took 4.5 s instead of 1.2 s). A custom plan sees the table's
    current size and uses the ``(customer_id, at)`` index. Only this read is re-planned: the
    batch's inserts keep their prepared plans.
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    yield  # a failure aborts the transaction, and SET LOCAL ends with it
    await session.execute(text("SET LOCAL plan_cache_mode TO DEFAULT"))


async def _groups(
    session: AsyncSession, campaign: Campaign, *, after_id: int | None, limit: int
) -> list[Decision]:
    statement = select(CustomerGroup.id, CustomerGroup.chat_id, CustomerGroup.owner_userid).where(
        CustomerGroup.dismissed_at.is_(None)
    )
    target = campaign.groups
    if target is not None and target.owners:
        statement = statement.where(CustomerGroup.owner_userid.in_(target.owners))
    if target is not None and target.names:
        statement = statement.where(
            or_(CustomerGroup.name.in_(target.names), CustomerGroup.chat_id.in_(target.names))
        )
    if after_id is not None:
        statement = statement.where(CustomerGroup.id > after_id)
    rows = (await session.execute(statement.order_by(CustomerGroup.id).limit(limit))).all()
    return [
        Decision(
            f"g{gid}",
            None,
            gid,
            chat_id,
            owner,
            variant_of(campaign, f"g{gid}"),
            None if owner else NO_OWNER,
        )
        for gid, chat_id, owner in rows
    ]


def _owner(campaign: Campaign) -> ScalarSelect[str]:
    """Each customer's sending staff member: the oldest active relationship (among the
    ``owner.staff`` of the audience, when it names some)."""
    query = select(CustomerStaff.staff_userid).where(
        CustomerStaff.customer_id == Customer.id, CustomerStaff.state == FollowState.ACTIVE
    )
    named = campaign.audience.owner.staff if campaign.audience.owner is not None else []
    if named:
        query = query.where(CustomerStaff.staff_userid.in_(named))
    return query.order_by(CustomerStaff.id).limit(1).scalar_subquery()


def _recent(campaign: Campaign, now: datetime) -> ColumnElement[bool]:
    """Whether the customer was messaged within ``exclude_messaged_within``."""
    within = campaign.audience.exclude_messaged_within
    if within is None:
        return false()
    return exists().where(
        MarketingTouch.customer_id == Customer.id, MarketingTouch.at > now - within
    )


def _capped(cap: FrequencyCap | None, now: datetime) -> ColumnElement[bool]:
    """Whether the customer has had ``cap.messages`` marketing messages within ``cap.per``."""
    if cap is None:
        return false()
    touches = (
        select(func.count())
        .where(
            MarketingTouch.customer_id == Customer.id,
            MarketingTouch.at > now - cap.per,
            MarketingTouch.at <= now,
        )
        .scalar_subquery()
    )
    return touches >= cap.messages


async def _followers(
    session: AsyncSession, campaign: Campaign, ids: Sequence[int], now: datetime
) -> dict[int, tuple[str | None, str | None]]:
    """openid and, when the window is closed, the reason (checked again at send time)."""
    rows = (
        await session.execute(
            select(MpFollower.customer_id, MpFollower.openid, MpFollower.last_message_at)
            .where(
                MpFollower.customer_id.in_(ids),
                MpFollower.account == campaign.account,
                MpFollower.subscribed.is_(True),
            )
            .order_by(MpFollower.last_message_at.desc().nulls_last())
        )
    ).all()
    found: dict[int, tuple[str | None, str | None]] = {}
    for cid, openid, last in rows:
        found.setdefault(cid, (openid, window_reason(last, now)))
    return found


def window_reason(last_message_at: datetime | None, now: datetime) -> str | None:
    """``outside_48h_window`` unless the follower wrote within the last 48 hours."""
    if last_message_at is None or now >= last_message_at + MP_REPLY_WINDOW:
        return OUTSIDE_WINDOW
    return None
