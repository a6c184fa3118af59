"""Store rows as the bot's handlers leave them, for engine tests: staff, customers and who
follows whom, tags, groups, Official Account followers, inbox rows, and playbooks built from
the same dictionaries the YAML holds.

Each factory adds to the given session and flushes (ids are known on return); the caller
owns the transaction.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sop.playbooks.model import Playbook
from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    CustomerTag,
    FollowState,
    GroupMember,
    InboxRow,
    MpFollower,
    Staff,
    Tag,
    TagSource,
)

_inbox_numbers = itertools.count(1)


def playbook(name: str = "onboarding", **fields: Any) -> Playbook:
    """A validated playbook from YAML-shaped fields; by default a ``customer_added`` trigger
    and one nudge step."""
    fields.setdefault("trigger", {"event": "customer_added"})
    fields.setdefault(
        "steps", [{"nudge": {"script": {"text": "Say hello to {{ customer.name }}"}}}]
    )
    return Playbook.model_validate({"name": name, **fields})


async def add_staff(
    session: AsyncSession, userid: str, *, now: datetime, name: str | None = None, **extra: Any
) -> Staff:
    staff = Staff(userid=userid, name=name or userid, created_at=now, status=1, **extra)
    session.add(staff)
    await session.flush()
    return staff


async def add_customer(
    session: AsyncSession,
    external_userid: str,
    *,
    now: datetime,
    owner: str | None = None,
    added_at: datetime | None = None,
    channel_state: str | None = None,
    **extra: Any,
) -> Customer:
    """A customer; with ``owner``, also the active relationship to that staff member."""
    customer = Customer(
        external_userid=external_userid, name=extra.pop("name", external_userid), created_at=now
    )
    for field, value in extra.items():
        setattr(customer, field, value)
    session.add(customer)
    await session.flush()
    if owner is not None:
        await follow(
            session, customer.id, owner, added_at=added_at or now, channel_state=channel_state
        )
    return customer


async def follow(
    session: AsyncSession,
    customer_id: int,
    staff_userid: str,
    *,
    added_at: datetime,
    state: FollowState = FollowState.ACTIVE,
    channel_state: str | None = None,
) -> CustomerStaff:
    relationship = CustomerStaff(
        customer_id=customer_id,
        staff_userid=staff_userid,
        state=state,
        channel_state=channel_state,
        added_at=added_at,
    )
    session.add(relationship)
    await session.flush()
    return relationship


async def add_tag(session: AsyncSession, name: str, *, now: datetime, group: str = "") -> Tag:
    tag = Tag(name=name, group_name=group, created_at=now)
    session.add(tag)
    await session.flush()
    return tag


async def tag_customer(
    session: AsyncSession, customer_id: int, tag: Tag, *, now: datetime, staff_userid: str = ""
) -> CustomerTag:
    row = CustomerTag(
        customer_id=customer_id,
        tag_id=tag.id,
        staff_userid=staff_userid,
        source=TagSource.WECOM,
        added_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def add_group(
    session: AsyncSession,
    chat_id: str,
    *,
    now: datetime,
    name: str | None = None,
    owner: str | None = None,
    members: dict[str, int | None] | None = None,
) -> CustomerGroup:
    """A customer group; ``members`` maps member userids to customer ids (None for staff)."""
    group = CustomerGroup(chat_id=chat_id, name=name, owner_userid=owner, created_at=now)
    session.add(group)
    await session.flush()
    for userid, customer_id in (members or {}).items():
        session.add(
            GroupMember(
                group_id=group.id,
                member_userid=userid,
                member_type=1 if customer_id is None else 2,
                customer_id=customer_id,
                joined_at=now,
            )
        )
    await session.flush()
    return group


async def add_mp_follower(
    session: AsyncSession,
    customer_id: int,
    *,
    account: str,
    openid: str,
    now: datetime,
) -> MpFollower:
    follower = MpFollower(
        account=account,
        openid=openid,
        customer_id=customer_id,
        subscribed=True,
        subscribed_at=now,
        last_message_at=now,
    )
    session.add(follower)
    await session.flush()
    return follower


async def add_inbox_row(
    session: AsyncSession, *, now: datetime, source: str = "wecom:app", payload: str = "<xml/>"
) -> int:
    """An inbox row (already processed) that events and timeline entries can point at."""
    row = InboxRow(
        source=source,
        dedupe_key=f"test:{next(_inbox_numbers)}:{now.isoformat()}",
        content_type="xml",
        payload=payload,
        received_at=now,
    )
    session.add(row)
    await session.flush()
    return row.id
