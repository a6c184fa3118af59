"""The customer a preview runs against, in a scratch database: copied from the real one
(``--customer``), or made up to satisfy the playbook's audience (``--sample``).

Copies keep their ids, so foreign keys hold and the preview renders exactly what the real
customer would get; nothing is ever written to the source database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from sop.playbooks.model import Playbook
from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    CustomerTag,
    FollowState,
    GroupMember,
    MpFollower,
    Staff,
    Tag,
    TagSource,
)

SAMPLE_STAFF = "sample_staff"
SAMPLE_EXTERNAL_USERID = "wmSAMPLE0000000000000000000000"


def _columns(row: DeclarativeBase) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__mapper__.column_attrs}


async def _copy(target: AsyncSession, rows: Sequence[DeclarativeBase]) -> None:
    for row in rows:
        await target.execute(insert(type(row)).values(**_columns(row)))


async def copy_customer(source: AsyncSession, target: AsyncSession, customer_ref: str) -> int:
    """Copy one customer (by id or external userid) and what shapes their messages: owners,
    tags, groups and Official Account followings. Returns the customer's id."""
    condition = Customer.external_userid == customer_ref
    if customer_ref.isdigit():
        condition = or_(condition, Customer.id == int(customer_ref))
    customer = await source.scalar(select(Customer).where(condition).limit(1))
    if customer is None:
        raise LookupError(
            f"no customer {customer_ref!r} (give an id or an external userid; "
            "`scrm customers` lists them)"
        )
    cid = customer.id
    follows = (
        await source.scalars(select(CustomerStaff).where(CustomerStaff.customer_id == cid))
    ).all()
    userids = {f.staff_userid for f in follows}
    staff = (await source.scalars(select(Staff).where(Staff.userid.in_(userids)))).all()
    links = (await source.scalars(select(CustomerTag).where(CustomerTag.customer_id == cid))).all()
    tags = (await source.scalars(select(Tag).where(Tag.id.in_({t.tag_id for t in links})))).all()
    members = (
        await source.scalars(select(GroupMember).where(GroupMember.customer_id == cid))
    ).all()
    groups = (
        await source.scalars(
            select(CustomerGroup).where(CustomerGroup.id.in_({m.group_id for m in members}))
        )
    ).all()
    followers = (
        await source.scalars(select(MpFollower).where(MpFollower.customer_id == cid))
    ).all()
    for rows in ([customer], staff, follows, tags, links, groups, members, followers):
        await _copy(target, rows)
    return cid


async def sample_customer(target: AsyncSession, playbook: Playbook, *, now: datetime) -> int:
    """A made-up customer who is in the playbook's audience and can be reached on every
    channel its steps use."""
    audience = playbook.audience
    fields: dict[str, Any] = {"city": "上海"}
    fields.update(audience.fields)
    schedule = playbook.trigger.schedule
    if schedule is not None and schedule.date_field:
        fields[schedule.date_field] = now.strftime("%m-%d")
    last = now - timedelta(hours=1)
    if audience.last_interaction is not None and audience.last_interaction.before is not None:
        last = now - audience.last_interaction.before - timedelta(days=1)
    customer = Customer(
        external_userid=SAMPLE_EXTERNAL_USERID,
        name="张三",
        type=1,
        corp_name="示例科技有限公司",
        custom_fields=fields,
        created_at=now,
        last_interaction_at=last,
    )
    target.add(customer)
    owner = audience.owner.staff[0] if audience.owner and audience.owner.staff else SAMPLE_STAFF
    departments = audience.owner.department[:1] if audience.owner else []
    target.add(
        Staff(userid=owner, name="李顾问", departments=departments, created_at=now, status=1)
    )
    await target.flush()
    channels = playbook.trigger.channel or audience.channel
    channel = channels[0] if channels else None
    target.add(
        CustomerStaff(
            customer_id=customer.id,
            staff_userid=owner,
            state=FollowState.ACTIVE,
            remark="张总",
            channel_state=channel,
            added_at=now - timedelta(days=1),
        )
    )
    wanted = [
        *(audience.tags.all if audience.tags else []),
        *(audience.tags.any[:1] if audience.tags else []),
    ]
    for name in wanted:
        group_name, _, tag_name = name.rpartition("/")
        tag = Tag(group_name=group_name, name=tag_name, created_at=now)
        target.add(tag)
        await target.flush()
        target.add(
            CustomerTag(
                customer_id=customer.id,
                tag_id=tag.id,
                staff_userid=owner,
                source=TagSource.MANUAL,
                added_at=now,
            )
        )
    for account in {s.send.account for s in playbook.steps if s.send and s.send.account}:
        target.add(
            MpFollower(
                account=account,
                openid=f"oSAMPLE{account}",
                customer_id=customer.id,
                subscribed=True,
                subscribed_at=now - timedelta(days=30),
                last_message_at=now,
            )
        )
    await target.flush()
    return customer.id
