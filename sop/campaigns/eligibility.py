"""Who in a batch of the audience gets the campaign, from which staff member, in which variant.

``plan`` (counting) and the fan-out (writing) ask the same question of the same batches, so
it is answered once, set-based: a handful of queries per batch of ids, never one per
customer. Each recipient gets at most one exclusion reason, the first that applies, in this
order: ``opted_out``, then what the channel needs (``no_owner`` for mass and staff tasks,
``not_a_follower`` / ``outside_48h_window`` for Official Account messages), then
``messaged_recently`` (``exclude_messaged_within``), then ``capped`` (the frequency cap shared
with playbooks, counted on the ``marketing_touches`` ledger).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select
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


def batch_select(
    campaign: Campaign, *, now: datetime, after_id: int | None, limit: int
) -> Select[int]:
    """The next ids of the campaign's audience (customers, or groups for group_mass)."""
    if campaign.channel != "group_mass":
        return audience_select(campaign.audience, now=now, after_id=after_id, limit=limit)
    statement = select(CustomerGroup.id).where(CustomerGroup.dismissed_at.is_(None))
    target = campaign.groups
    if target is not None and target.owners:
        statement = statement.where(CustomerGroup.owner_userid.in_(target.owners))
    if target is not None and target.names:
        statement = statement.where(
            or_(CustomerGroup.name.in_(target.names), CustomerGroup.chat_id.in_(target.names))
        )
    if after_id is not None:
        statement = statement.where(CustomerGroup.id > after_id)
    return statement.order_by(CustomerGroup.id).limit(limit)


async def decide(
    session: AsyncSession,
    campaign: Campaign,
    ids: Sequence[int],
    *,
    cap: FrequencyCap | None,
    now: datetime,
) -> list[Decision]:
    """A decision for each id of one batch, in id order."""
    if campaign.channel == "group_mass":
        return await _groups(session, campaign, ids)
    customers = {
        cid: (external, opted)
        for cid, external, opted in (
            await session.execute(
                select(Customer.id, Customer.external_userid, Customer.opted_out_at).where(
                    Customer.id.in_(ids)
                )
            )
        ).all()
    }
    owners = await _owners(session, campaign, ids)
    followers = await _followers(session, campaign, ids, now) if campaign.channel == "mp" else {}
    recent = await _recent(session, campaign, ids, now)
    capped = await _capped(session, ids, cap, now) if campaign.frequency_cap else set()
    decisions = []
    for cid in ids:
        external, opted_out_at = customers.get(cid, (None, None))
        owner = owners.get(cid)
        address = external
        if campaign.channel == "mp":
            address, reason = followers.get(cid, (None, NOT_A_FOLLOWER))
        else:
            reason = None if owner is not None and external else NO_OWNER
        if opted_out_at is not None:
            reason = OPTED_OUT
        elif reason is None and cid in recent:
            reason = MESSAGED_RECENTLY
        elif reason is None and cid in capped:
            reason = CAPPED
        recipient = f"c{cid}"
        decisions.append(
            Decision(recipient, cid, None, address, owner, variant_of(campaign, recipient), reason)
        )
    return decisions


async def _groups(session: AsyncSession, campaign: Campaign, ids: Sequence[int]) -> list[Decision]:
    rows = (
        await session.execute(
            select(CustomerGroup.id, CustomerGroup.chat_id, CustomerGroup.owner_userid)
            .where(CustomerGroup.id.in_(ids))
            .order_by(CustomerGroup.id)
        )
    ).all()
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


async def _owners(session: AsyncSession, campaign: Campaign, ids: Sequence[int]) -> dict[int, str]:
    """Each customer's sending staff member: the oldest active relationship (among the
    ``owner.staff`` of the audience, when it names some)."""
    query = select(CustomerStaff.customer_id, CustomerStaff.staff_userid).where(
        CustomerStaff.customer_id.in_(ids), CustomerStaff.state == FollowState.ACTIVE
    )
    named = campaign.audience.owner.staff if campaign.audience.owner is not None else []
    if named:
        query = query.where(CustomerStaff.staff_userid.in_(named))
    owners: dict[int, str] = {}
    for cid, userid in (await session.execute(query.order_by(CustomerStaff.id))).all():
        owners.setdefault(cid, userid)
    return owners


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


async def _recent(
    session: AsyncSession, campaign: Campaign, ids: Sequence[int], now: datetime
) -> set[int]:
    within = campaign.audience.exclude_messaged_within
    if within is None:
        return set()
    query = select(MarketingTouch.customer_id).where(
        MarketingTouch.customer_id.in_(ids), MarketingTouch.at > now - within
    )
    return set((await session.scalars(query.distinct())).all())


async def _capped(
    session: AsyncSession, ids: Sequence[int], cap: FrequencyCap | None, now: datetime
) -> set[int]:
    if cap is None:
        return set()
    query = (
        select(MarketingTouch.customer_id)
        .where(
            MarketingTouch.customer_id.in_(ids),
            MarketingTouch.at > now - cap.per,
            MarketingTouch.at <= now,
        )
        .group_by(MarketingTouch.customer_id)
        .having(func.count() >= cap.messages)
    )
    return set((await session.scalars(query)).all())


def window_reason(last_message_at: datetime | None, now: datetime) -> str | None:
    """``outside_48h_window`` unless the follower wrote within the last 48 hours."""
    if last_message_at is None or now >= last_message_at + MP_REPLY_WINDOW:
        return OUTSIDE_WINDOW
    return None
