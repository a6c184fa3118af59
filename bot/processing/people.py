"""Finding (or creating from ids alone) customers, staff, groups and members one at a time,
through the ORM: what the refresher's syncs use. The inbox processor reads those a whole batch
names at once instead (:mod:`bot.processing.roster`).

Events carry ids and nothing else; these rows start bare and the refresher fills them in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.processing.messages import is_external_id
from bot.processing.upsert import get_or_create
from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    GroupMember,
    MpFollower,
    Staff,
)


async def customer_by_external_id(
    session: AsyncSession, external_userid: str, now: datetime
) -> Customer:
    return await get_or_create(
        session,
        Customer,
        {"external_userid": external_userid},
        {"created_at": now, "custom_fields": {}},
    )


async def staff_by_userid(session: AsyncSession, userid: str, now: datetime) -> Staff:
    return await get_or_create(
        session, Staff, {"userid": userid}, {"created_at": now, "departments": []}
    )


async def relationship(
    session: AsyncSession, customer_id: int, staff_userid: str
) -> CustomerStaff:
    return await get_or_create(
        session, CustomerStaff, {"customer_id": customer_id, "staff_userid": staff_userid}
    )


async def group_by_chat_id(session: AsyncSession, chat_id: str, now: datetime) -> CustomerGroup:
    return await get_or_create(session, CustomerGroup, {"chat_id": chat_id}, {"created_at": now})


async def group_member(session: AsyncSession, group_id: int, member_userid: str) -> GroupMember:
    return await get_or_create(
        session, GroupMember, {"group_id": group_id, "member_userid": member_userid}
    )


async def customer_id_for(session: AsyncSession, userid: str, now: datetime) -> int | None:
    """The customer behind a userid that may be external (``wm``/``wo``), else None."""
    if not is_external_id(userid):
        return None
    return (await customer_by_external_id(session, userid, now)).id


async def mp_follower(
    session: AsyncSession, account: str, openid: str, now: datetime, unionid: str | None = None
) -> MpFollower:
    """The follower row of ``openid`` on ``account``, with its customer (by unionid if known)."""
    stmt = select(MpFollower).where(MpFollower.account == account, MpFollower.openid == openid)
    follower = (await session.scalars(stmt)).one_or_none()
    if follower is not None:
        return follower
    customer: Customer | None = None
    if unionid:
        by_union = select(Customer).where(Customer.unionid == unionid).order_by(Customer.id)
        customer = (await session.scalars(by_union.limit(1))).one_or_none()
    if customer is None:
        customer = Customer(unionid=unionid, created_at=now, custom_fields={})
        session.add(customer)
        await session.flush()
    follower = MpFollower(
        account=account, openid=openid, customer_id=customer.id, subscribed=False
    )
    session.add(follower)
    await session.flush()
    return follower
