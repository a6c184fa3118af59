"""Audience conditions as SQL, on SQLite and PostgreSQL: each condition, alone and combined,
on a small cast of customers whose facts sit on the edges (random worlds and 2,000 customers
are in test_query_sets.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from sop.audience.model import Audience
from sop.audience.query import audience_select, customer_matches
from store.models import FollowState
from tests.sop.audience.world import (
    GroupDef,
    Person,
    StaffDef,
    TagDef,
    World,
    matching,
    store,
)
from tests.support.clock import ManualClock
from tests.support.database import Database

ACTIVE, HALF, REMOVED = FollowState.ACTIVE, FollowState.HALF, FollowState.REMOVED

LEVEL_VIP = TagDef("等级", "VIP")
HOBBY_VIP = TagDef("兴趣", "VIP")
LEVEL_PLAIN = TagDef("等级", "普通")
NEW = TagDef("", "新客")
OLD = TagDef("", "old", deleted=True)
G1 = GroupDef("wrG1", "G1")
G2 = GroupDef("wrG2", "G2", dismissed=True)
G3 = GroupDef("wrOgC3", None)


def cast(now: datetime) -> World:
    """Five customers, each on the edge of some condition."""
    return World(
        staff=[
            StaffDef("zhangsan", [1, 2], 1),
            StaffDef("lisi", [3], 3),
            StaffDef("zhaoliu", ["5"]),  # a department id stored as a string is not 5
        ],
        tags=[LEVEL_VIP, HOBBY_VIP, LEVEL_PLAIN, NEW, OLD],
        groups=[G1, G2, G3],
        people=[
            Person(
                "alice",
                {"city": "上海", "level": 3, "vip": True, "score": 4.5},
                now - timedelta(days=2),
                [("zhangsan", ACTIVE, "expo")],
                [LEVEL_VIP],
                [(G1, False)],
            ),
            Person(
                "bob",
                {"city": "北京", "level": "3", "vip": False},
                now - timedelta(days=40),
                [("lisi", ACTIVE, None), ("zhangsan", REMOVED, "expo")],
                [HOBBY_VIP, NEW],
                [(G1, True)],
            ),
            Person(
                "carol",
                {"level": 3.0, "vip": 1},
                None,
                [("zhangsan", HALF, None), ("zhaoliu", ACTIVE, None)],
                [LEVEL_PLAIN],
            ),
            Person(
                "dave",
                {},
                now - timedelta(days=30),
                [("zhangsan", ACTIVE, "web"), ("lisi", ACTIVE, None)],
                groups=[(G2, False)],
            ),
            Person(
                "erin",
                {"city": "上海"},
                now - timedelta(days=10),
                tags=[OLD],
                groups=[(G3, False)],
            ),
        ],
    )


@pytest.fixture
async def world(db: Database, clock: ManualClock) -> World:
    built = cast(clock.now())
    await store(db, built, clock.now())
    return built


EVERYONE = {"alice", "bob", "carol", "dave", "erin"}
CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("empty", {}, EVERYONE),
    ("tag in any group", {"tags": {"all": ["VIP"]}}, {"alice", "bob"}),
    ("group/tag", {"tags": {"all": ["等级/VIP"]}}, {"alice"}),
    ("tags all", {"tags": {"all": ["兴趣/VIP", "新客"]}}, {"bob"}),
    ("tags all, one missing", {"tags": {"all": ["等级/VIP", "新客"]}}, set()),
    ("tags any", {"tags": {"any": ["等级/普通", "新客"]}}, {"bob", "carol"}),
    ("tags none", {"tags": {"none": ["VIP"]}}, {"carol", "dave", "erin"}),
    ("deleted tag", {"tags": {"any": ["old"]}}, set()),
    ("unknown tag group", {"tags": {"any": ["其他/VIP"]}}, set()),
    ("owner staff", {"owner": {"staff": ["zhangsan"]}}, {"alice", "dave"}),
    ("owner staff list", {"owner": {"staff": ["lisi", "zhaoliu"]}}, {"bob", "carol", "dave"}),
    ("owner department", {"owner": {"department": [3]}}, {"bob", "dave"}),
    ("owner second department", {"owner": {"department": [2]}}, {"alice", "dave"}),
    ("department as text", {"owner": {"department": [5]}}, set()),
    (
        "owner staff or department",
        {"owner": {"staff": ["zhaoliu"], "department": [3]}},
        {"bob", "carol", "dave"},
    ),
    ("any owner", {"owner": {}}, {"alice", "bob", "carol", "dave"}),
    ("channel, removed counts", {"channel": ["expo"]}, {"alice", "bob"}),
    ("channel list", {"channel": ["web", "nowhere"]}, {"dave"}),
    ("group by name, quit excluded", {"groups": {"any": ["G1"]}}, {"alice"}),
    ("group by chat id", {"groups": {"any": ["wrOgC3"]}}, {"erin"}),
    ("dismissed group", {"groups": {"any": ["G2"]}}, set()),
    ("not in group", {"groups": {"none": ["G1"]}}, {"bob", "carol", "dave", "erin"}),
    ("text field", {"fields": {"city": "上海"}}, {"alice", "erin"}),
    ("number field matches 3.0", {"fields": {"level": 3}}, {"alice", "carol"}),
    ("float condition", {"fields": {"level": 3.0}}, {"alice", "carol"}),
    ("text '3' is not 3", {"fields": {"level": "3"}}, {"bob"}),
    ("true", {"fields": {"vip": True}}, {"alice"}),
    ("false", {"fields": {"vip": False}}, {"bob"}),
    ("1 is not true", {"fields": {"vip": 1}}, {"carol"}),
    ("decimal", {"fields": {"score": 4.5}}, {"alice"}),
    ("two fields", {"fields": {"city": "上海", "level": 3}}, {"alice"}),
    ("missing field", {"fields": {"nothing": "x"}}, set()),
    ("silent or never", {"last_interaction": {"before": "30d"}}, {"bob", "carol"}),
    (
        "recent, boundary included",
        {"last_interaction": {"after": "30d"}},
        {"alice", "dave", "erin"},
    ),
    ("between", {"last_interaction": {"before": "5d", "after": "30d"}}, {"dave", "erin"}),
    (
        "combined",
        {"tags": {"any": ["VIP"]}, "owner": {"staff": ["zhangsan"]}, "fields": {"city": "上海"}},
        {"alice"},
    ),
    (
        "combined, one fails",
        {"tags": {"any": ["VIP"]}, "owner": {"staff": ["lisi"]}, "channel": ["web"]},
        set(),
    ),
    (
        "combined with none",
        {"tags": {"none": ["VIP"]}, "groups": {"none": ["wrOgC3"]}},
        {"carol", "dave"},
    ),
]


def family(spec: dict[str, Any]) -> str:
    return "combined" if len(spec) > 1 else next(iter(spec), "empty")


FAMILIES = sorted({family(spec) for _, spec, _ in CASES})


@pytest.mark.parametrize("name", FAMILIES)
async def test_conditions(db: Database, world: World, clock: ManualClock, name: str) -> None:
    """Each case of one family (the world is built once per family: PostgreSQL setup is slow);
    every wrong case is reported, not only the first."""
    wrong = []
    for case, spec, expected in CASES:
        if family(spec) == name:
            got = await matching(db, world, spec, clock.now())
            if got != expected:
                wrong.append(f"{case}: {spec} gave {sorted(got)}, expected {sorted(expected)}")
    assert not wrong, "\n".join(wrong)


async def test_keyset_batches_cover_every_match_once_in_order(
    db: Database, world: World, clock: ManualClock
) -> None:
    audience = Audience()
    seen: list[int] = []
    async with db.sessions() as session:
        after: int | None = None
        while batch := (
            await session.scalars(
                audience_select(audience, now=clock.now(), after_id=after, limit=2)
            )
        ).all():
            assert len(batch) <= 2
            seen.extend(batch)
            after = batch[-1]
    assert seen == sorted(world.ids.values())


async def test_unknown_customer_does_not_match(
    db: Database, world: World, clock: ManualClock
) -> None:
    async with db.sessions() as session:
        assert not await customer_matches(session, Audience(), 10_000, now=clock.now())


def test_bad_arguments_are_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        audience_select(Audience(), now=datetime.now().astimezone(), limit=0)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        audience_select(Audience(), now=datetime(2026, 1, 1))  # noqa: DTZ001
