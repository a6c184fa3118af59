"""A small population of customers, staff, tags and groups, kept both in the database and in
plain Python, with a reference evaluator of audiences written from the documented meaning.

The SQL in :mod:`sop.audience.query` is checked against :func:`reference_match`, which is
deliberately naive (loops over one person's facts), so a wrong join or a type mix-up in the
SQL shows up as a disagreement.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from sop.audience.model import Audience
from sop.audience.query import audience_select, customer_matches
from store.models import (
    Customer,
    CustomerGroup,
    CustomerStaff,
    CustomerTag,
    FollowState,
    GroupMember,
    Staff,
    Tag,
    TagSource,
)
from tests.support.database import Database

#: How long every customer of a world has been known (never-heard-from counts from then).
KNOWN_FOR = timedelta(days=365)


@dataclass(frozen=True)
class TagDef:
    group: str
    name: str
    deleted: bool = False


@dataclass(frozen=True)
class StaffDef:
    userid: str
    departments: list[Any]
    main: int | None = None


@dataclass(frozen=True)
class GroupDef:
    chat_id: str
    name: str | None
    dismissed: bool = False


@dataclass
class Person:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    last: datetime | None = None
    #: (staff userid, state, channel code)
    follows: list[tuple[str, FollowState, str | None]] = field(default_factory=list)
    tags: list[TagDef] = field(default_factory=list)
    #: (group, left)
    groups: list[tuple[GroupDef, bool]] = field(default_factory=list)


@dataclass
class World:
    staff: list[StaffDef]
    tags: list[TagDef]
    groups: list[GroupDef]
    people: list[Person]
    ids: dict[str, int] = field(default_factory=dict)

    def names_of(self, customer_ids: Iterable[int]) -> set[str]:
        names = {known: name for name, known in self.ids.items()}
        return {names[customer_id] for customer_id in customer_ids}


async def store(db: Database, world: World, now: datetime) -> None:
    """Insert ``world`` (bulk statements, one transaction); fills ``world.ids``."""
    async with db.sessions.begin() as session:
        for staff in world.staff:
            session.add(
                Staff(
                    userid=staff.userid,
                    departments=staff.departments,
                    main_department=staff.main,
                    created_at=now,
                )
            )
        tag_ids: dict[TagDef, int] = {}
        for tag in world.tags:
            row = Tag(
                group_name=tag.group,
                name=tag.name,
                created_at=now,
                deleted_at=now if tag.deleted else None,
            )
            session.add(row)
            await session.flush()
            tag_ids[tag] = row.id
        group_ids: dict[str, int] = {}
        for group in world.groups:
            chat = CustomerGroup(
                chat_id=group.chat_id,
                name=group.name,
                created_at=now,
                dismissed_at=now if group.dismissed else None,
            )
            session.add(chat)
            await session.flush()
            group_ids[group.chat_id] = chat.id
        result = await session.execute(
            insert(Customer).returning(Customer.id, Customer.external_userid),
            [
                {
                    "external_userid": person.name,
                    "name": person.name,
                    "custom_fields": person.fields,
                    "last_interaction_at": person.last,
                    "created_at": now - KNOWN_FOR,
                }
                for person in world.people
            ],
        )
        world.ids = {str(external): int(key) for key, external in result.all()}
        follows = [
            {
                "customer_id": world.ids[person.name],
                "staff_userid": userid,
                "state": state,
                "channel_state": channel,
            }
            for person in world.people
            for userid, state, channel in person.follows
        ]
        tagged = [
            {
                "customer_id": world.ids[person.name],
                "tag_id": tag_ids[tag],
                "staff_userid": "",
                "source": TagSource.MANUAL,
                "added_at": now,
            }
            for person in world.people
            for tag in person.tags
        ]
        members = [
            {
                "group_id": group_ids[group.chat_id],
                "member_userid": person.name,
                "member_type": 2,
                "customer_id": world.ids[person.name],
                "left_at": now if left else None,
            }
            for person in world.people
            for group, left in person.groups
        ]
        for model, rows in (
            (CustomerStaff, follows),
            (CustomerTag, tagged),
            (GroupMember, members),
        ):
            if rows:
                await session.execute(insert(model), rows)


async def matching(
    db: Database,
    world: World,
    spec: dict[str, Any],
    now: datetime,
    *,
    probe: random.Random | None = None,
) -> set[str]:
    """The names ``audience_select`` returns, after checking that ``customer_matches`` (for
    every customer, or 20 drawn with ``probe``) and the reference evaluator agree."""
    audience = Audience.model_validate(spec)
    async with db.sessions() as session:
        ids = (await session.scalars(audience_select(audience, now=now))).all()
        names = world.names_of(ids)
        checked = sorted(world.ids.items())
        if probe is not None:
            checked = probe.sample(checked, 20)
        for name, customer_id in checked:
            assert await customer_matches(session, audience, customer_id, now=now) == (
                name in names
            ), f"customer_matches disagrees with audience_select on {name} for {spec}"
    for person in world.people:
        assert reference_match(world, person, audience, now) == (person.name in names), (
            f"{person.name} for {spec}"
        )
    return names


def reference_match(world: World, person: Person, audience: Audience, now: datetime) -> bool:
    """The documented meaning of ``audience`` for one person, in plain Python."""
    staff = {s.userid: s for s in world.staff}
    if audience.tags is not None:
        tags = audience.tags
        if not all(_tagged(person, [name]) for name in tags.all):
            return False
        if tags.any and not _tagged(person, tags.any):
            return False
        if tags.none and _tagged(person, tags.none):
            return False
    if audience.owner is not None and not any(
        state == FollowState.ACTIVE
        and _owns(staff[userid], audience.owner.staff, audience.owner.department)
        for userid, state, _ in person.follows
    ):
        return False
    if audience.channel and not any(code in audience.channel for _, _, code in person.follows):
        return False
    if audience.groups is not None:
        if audience.groups.any and not _member(person, audience.groups.any):
            return False
        if audience.groups.none and _member(person, audience.groups.none):
            return False
    for key, value in audience.fields.items():
        if key not in person.fields or not _json_equal(person.fields[key], value):
            return False
    last = audience.last_interaction
    if last is not None:
        if (
            last.before is not None
            and (person.last if person.last is not None else now - KNOWN_FOR) >= now - last.before
        ):
            return False
        if last.after is not None and (person.last is None or person.last < now - last.after):
            return False
    return True


def _tagged(person: Person, names: list[str]) -> bool:
    def named(tag: TagDef, name: str) -> bool:
        group, slash, short = name.partition("/")
        return tag.name == name or bool(slash) and (tag.group, tag.name) == (group, short)

    return any(not tag.deleted and named(tag, name) for tag in person.tags for name in names)


def _owns(staff: StaffDef, userids: list[str], departments: list[int]) -> bool:
    if not userids and not departments:
        return True
    if staff.userid in userids:
        return True
    listed = {d for d in staff.departments if isinstance(d, int) and not isinstance(d, bool)}
    return bool(listed & set(departments)) or staff.main in departments


def _member(person: Person, names: list[str]) -> bool:
    return any(
        not left and not group.dismissed and (group.name in names or group.chat_id in names)
        for group, left in person.groups
    )


def _json_equal(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(wanted, int | float):
        return isinstance(stored, int | float) and stored == wanted
    return isinstance(stored, str) and stored == wanted
