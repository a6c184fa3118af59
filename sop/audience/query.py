"""Audience conditions as SQL: one WHERE clause over ``customers``, evaluated by the database.

Playbooks (``audience``, ``if``), campaigns (fan-out of 100,000 customers, ``plan`` counts) and
the preview all ask the same question, so it is answered once, set-based: each condition is a
correlated ``EXISTS`` on the table that holds the fact, never a per-customer loop in Python.
The same SQL runs on SQLite and PostgreSQL; JSON columns go through :mod:`sop.audience.json_sql`.

What each condition means, precisely:

* ``tags``: a ``customer_tags`` row (from any staff member's relationship) for a tag that is
  not deleted. ``group/tag`` names the tag ``tag`` in the tag group ``group`` (or a tag whose
  own name is ``group/tag``); a plain ``tag`` matches that name in any group.
* ``owner``: an *active* relationship (``customer_staff.state = active``; ``half`` and
  ``removed`` do not count) with one of the staff, or with staff whose ``departments`` (or
  ``main_department``) hold one of the department ids; sub-departments are not expanded. A
  customer with no active relationship matches no ``owner`` condition.
* ``channel``: a relationship, in any state, that was made through one of the channel codes
  (``customer_staff.channel_state``): where the customer came from stays true after a removal.
* ``groups``: a membership that has not ended (``left_at`` is null) of a group that is not
  dismissed, named by group name or chat id; members who quit count as not in the group.
* ``fields``: ``customers.custom_fields`` members equal to the values, JSON types respected.
* ``last_interaction``: ``before: d`` is older than ``now - d`` or never; ``after: d`` is at or
  after ``now - d``.

Indexes used: ``customer_staff (customer_id, staff_userid)`` (unique) for owner and channel,
``customer_tags (customer_id, tag_id, staff_userid)`` (unique) for tags, with
``tags (group_name, name)`` for ``group/tag`` names (a plain name scans the small tag table
once), ``staff.userid`` for departments, ``group_members.customer_id`` and
``customer_groups.chat_id`` for groups, and the primary key for keyset pagination. Custom
fields and last interaction are read from the customer row itself, on the scan that pages by
id (a GIN index on ``customers.custom_fields`` would serve ``@>`` on PostgreSQL if needed).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from sop.audience.json_sql import json_array_has, json_field_equals
from sop.audience.model import (
    Audience,
    GroupCondition,
    LastInteraction,
    OwnerCondition,
    TagCondition,
)
from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    CustomerTag,
    FollowState,
    GroupMember,
    Staff,
    Tag,
)


def audience_filter(audience: Audience, *, now: datetime) -> ColumnElement[bool]:
    """The WHERE clause over :class:`Customer` for ``audience`` (all conditions must hold);
    an empty audience is ``true``. ``now`` anchors ``last_interaction``."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (the clock's UTC time), got {now!r}")
    clauses: list[ColumnElement[bool]] = []
    if audience.tags is not None:
        clauses.extend(_tags(audience.tags))
    if audience.owner is not None:
        clauses.append(_owner(audience.owner))
    if audience.channel:
        clauses.append(_channel(audience.channel))
    if audience.groups is not None:
        clauses.extend(_groups(audience.groups))
    clauses.extend(
        json_field_equals(Customer.custom_fields, key, value)
        for key, value in sorted(audience.fields.items())
    )
    if audience.last_interaction is not None:
        clauses.extend(_last_interaction(audience.last_interaction, now))
    return and_(*clauses) if clauses else true()


def audience_select(
    audience: Audience,
    *,
    now: datetime,
    after_id: int | None = None,
    limit: int | None = None,
) -> Select[int]:
    """The ids of matching customers in id order: one batch of a keyset-paginated stream.

    Pass the last id of a batch as ``after_id`` to get the next; rows added or removed
    between batches neither repeat nor shift the others (unlike OFFSET).
    """
    statement = select(Customer.id).where(audience_filter(audience, now=now))
    if after_id is not None:
        statement = statement.where(Customer.id > after_id)
    statement = statement.order_by(Customer.id)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        statement = statement.limit(limit)
    return statement


async def customer_matches(
    session: AsyncSession, audience: Audience, customer_id: int, *, now: datetime
) -> bool:
    """Whether one customer is in ``audience`` (an ``if`` step, an enrollment check): the
    same SQL as :func:`audience_select`, narrowed to the customer's primary key."""
    statement = select(Customer.id).where(
        Customer.id == customer_id, audience_filter(audience, now=now)
    )
    return await session.scalar(statement) is not None


def _tag_named(name: str) -> ColumnElement[bool]:
    group, slash, tag = name.partition("/")
    if not slash:
        return Tag.name == name
    return or_(and_(Tag.group_name == group, Tag.name == tag), Tag.name == name)


def _has_tag(names: list[str]) -> ColumnElement[bool]:
    tag_ids = select(Tag.id).where(Tag.deleted_at.is_(None), or_(*map(_tag_named, names)))
    return exists().where(CustomerTag.customer_id == Customer.id, CustomerTag.tag_id.in_(tag_ids))


def _tags(condition: TagCondition) -> list[ColumnElement[bool]]:
    clauses = [_has_tag([name]) for name in condition.all]
    if condition.any:
        clauses.append(_has_tag(condition.any))
    if condition.none:
        clauses.append(~_has_tag(condition.none))
    return clauses


def _owner(condition: OwnerCondition) -> ColumnElement[bool]:
    followers: list[ColumnElement[bool]] = []
    if condition.staff:
        followers.append(CustomerStaff.staff_userid.in_(condition.staff))
    if condition.department:
        in_department = or_(
            Staff.main_department.in_(condition.department),
            *(
                json_array_has(Staff.departments, department)
                for department in condition.department
            ),
        )
        followers.append(CustomerStaff.staff_userid.in_(select(Staff.userid).where(in_department)))
    if not followers:  # ``owner: {}``: any active relationship
        followers.append(true())
    return exists().where(
        CustomerStaff.customer_id == Customer.id,
        CustomerStaff.state == FollowState.ACTIVE,
        or_(*followers),
    )


def _channel(codes: list[str]) -> ColumnElement[bool]:
    return exists().where(
        CustomerStaff.customer_id == Customer.id, CustomerStaff.channel_state.in_(codes)
    )


def _in_groups(names: list[str]) -> ColumnElement[bool]:
    group_ids = select(CustomerGroup.id).where(
        CustomerGroup.dismissed_at.is_(None),
        or_(CustomerGroup.name.in_(names), CustomerGroup.chat_id.in_(names)),
    )
    return exists().where(
        GroupMember.customer_id == Customer.id,
        GroupMember.left_at.is_(None),
        GroupMember.group_id.in_(group_ids),
    )


def _groups(condition: GroupCondition) -> list[ColumnElement[bool]]:
    clauses = []
    if condition.any:
        clauses.append(_in_groups(condition.any))
    if condition.none:
        clauses.append(~_in_groups(condition.none))
    return clauses


def _last_interaction(condition: LastInteraction, now: datetime) -> list[ColumnElement[bool]]:
    clauses = []
    if condition.before is not None:
        cutoff = now - condition.before
        # Never heard from counts from when the customer became known: someone added
        # yesterday is new, not silent.
        clauses.append(func.coalesce(Customer.last_interaction_at, Customer.created_at) < cutoff)
    if condition.after is not None:
        clauses.append(Customer.last_interaction_at >= now - condition.after)
    return clauses
