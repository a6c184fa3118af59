"""Audience SQL at scale and at random: random worlds checked three ways (``audience_select``,
``customer_matches`` and the reference evaluator), and 2,000 customers answered by one
statement."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event

from sop.audience.model import Audience
from sop.audience.query import audience_select
from store.models import FollowState
from tests.sop.audience.world import (
    GroupDef,
    Person,
    StaffDef,
    TagDef,
    World,
    matching,
    reference_match,
    store,
)
from tests.support.clock import ManualClock
from tests.support.database import Database

FIELD_VALUES: list[Any] = [True, False, 0, 1, 3, 3.0, 2.5, "3", "1", "true", "上海"]
TAGS = [
    TagDef("等级", "VIP"),
    TagDef("兴趣", "VIP"),
    TagDef("等级", "普通"),
    TagDef("", "新客"),
    TagDef("", "old", deleted=True),
    TagDef("", "a/b"),  # a name with a slash, next to the tag b of the group a
    TagDef("a", "b"),
]
TAG_NAMES = ["VIP", "等级/VIP", "兴趣/VIP", "普通", "新客", "old", "a/b", "b", "none"]
STAFF = [
    StaffDef("s1", [1, 2], 1),
    StaffDef("s2", [2]),
    StaffDef("s3", ["3"], 3),
    StaffDef("s4", []),
]
GROUPS = [
    GroupDef("wrG1", "G1"),
    GroupDef("wrG2", "G2", dismissed=True),
    GroupDef("wrOgC3", None),
    GroupDef("wrG4", "G1"),  # two groups may share a name
]


def random_world(rng: random.Random, now: datetime, size: int) -> World:
    people = []
    for index in range(size):
        follows = [
            (staff.userid, rng.choice(list(FollowState)), rng.choice([None, "expo", "web"]))
            for staff in rng.sample(STAFF, rng.randint(0, 3))
        ]
        people.append(
            Person(
                f"c{index}",
                {
                    key: rng.choice(FIELD_VALUES)
                    for key in rng.sample(["a", "b", "c"], rng.randint(0, 3))
                },
                rng.choice([None, now - timedelta(days=rng.randint(0, 60))]),
                follows,
                rng.sample(TAGS, rng.randint(0, 3)),
                [(group, rng.random() < 0.3) for group in rng.sample(GROUPS, rng.randint(0, 2))],
            )
        )
    return World(STAFF, TAGS, GROUPS, people)


def random_audience(rng: random.Random) -> dict[str, Any]:
    def some(choices: list[Any], most: int = 2) -> list[Any]:
        return rng.sample(choices, rng.randint(0, most))

    spec: dict[str, Any] = {}
    if rng.random() < 0.5:
        spec["tags"] = {"all": some(TAG_NAMES, 1), "any": some(TAG_NAMES), "none": some(TAG_NAMES)}
    if rng.random() < 0.3:
        spec["owner"] = {"staff": some(["s1", "s2", "s3", "s4"]), "department": some([1, 2, 3])}
    if rng.random() < 0.2:
        spec["channel"] = some(["expo", "web", "other"]) or ["expo"]
    if rng.random() < 0.3:
        names = ["G1", "G2", "wrOgC3", "wrG4"]
        spec["groups"] = {"any": some(names), "none": some(names)}
    if rng.random() < 0.3:
        spec["fields"] = {key: rng.choice(FIELD_VALUES) for key in some(["a", "b", "c"], 1)}
    if rng.random() < 0.3:
        spec["last_interaction"] = rng.choice(
            [{"before": "20d"}, {"after": "30d"}, {"before": "10d", "after": "40d"}]
        )
    return spec


async def test_random_worlds_agree_with_the_reference(db: Database, clock: ManualClock) -> None:
    rng = random.Random(20261123)
    world = random_world(rng, clock.now(), 60)
    await store(db, world, clock.now())
    sizes = [
        len(await matching(db, world, random_audience(rng), clock.now(), probe=rng))
        for _ in range(40)
    ]
    assert sum(0 < size < len(world.people) for size in sizes) >= 15, sizes


async def test_two_thousand_customers_in_one_statement(db: Database, clock: ManualClock) -> None:
    """Set-based: the whole audience is one SELECT, whatever the number of customers."""
    rng = random.Random(7)
    world = random_world(rng, clock.now(), 2000)
    await store(db, world, clock.now())
    spec = {"tags": {"any": ["VIP"], "none": ["新客"]}, "owner": {"department": [2]}}
    audience = Audience.model_validate(spec)
    expected = {p.name for p in world.people if reference_match(world, p, audience, clock.now())}
    assert 20 < len(expected) < 1500

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with db.sessions() as session:
            ids = (await session.scalars(audience_select(audience, now=clock.now()))).all()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert world.names_of(ids) == expected
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
