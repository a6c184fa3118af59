"""Which events fire which triggers, with what key and context."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sop.engine.matching import Match, match
from sop.events import (
    CustomerAdded,
    CustomerRemoved,
    DomainEvent,
    JoinedGroup,
    LeftGroup,
    MessageReceived,
    TagAdded,
    TagRemoved,
)
from sop.playbooks.model import Trigger
from tests.support.database import Database
from tests.support.engine_factories import add_customer, add_group, add_tag

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
STAMP: dict[str, Any] = {"occurred_at": AT, "source": "wecom:app", "inbox_id": 7}


def _message(text: str, **fields: Any) -> MessageReceived:
    fields.setdefault("customer_id", 1)
    return MessageReceived(**STAMP, msg_type="text", text=text, **fields)


async def _match(db: Database, trigger: dict[str, Any], event: DomainEvent) -> Match | None:
    async with db.sessions() as session:
        return await match(session, "pb", Trigger.model_validate(trigger), event)


async def test_customer_added_keeps_the_welcome_code_and_the_adder(db: Database) -> None:
    event = CustomerAdded(
        **STAMP,
        customer_id=3,
        external_userid="wmA",
        staff_userid="zhangsan",
        channel_state="expo",
        welcome_code="WC1",
    )
    found = await _match(db, {"event": "customer_added", "channel": ["expo"]}, event)
    assert found is not None
    assert found.key == "pb:c3:inbox:7"
    assert found.staff_userid == "zhangsan"
    assert found.context["welcome_code"] == "WC1"
    assert found.context["added_at"] == AT.isoformat()
    assert await _match(db, {"event": "customer_added", "channel": ["ads"]}, event) is None
    half = CustomerAdded(
        **{**STAMP, "inbox_id": None},
        customer_id=3,
        external_userid="wmA",
        staff_userid="zhangsan",
        half=True,
    )
    assert await _match(db, {"event": "customer_added"}, half) is None


async def test_key_falls_back_to_the_time_without_an_inbox_row(db: Database) -> None:
    event = TagAdded(
        occurred_at=AT, source="refresh:customer", customer_id=4, tag_id=1, tag_name="VIP"
    )
    found = await _match(db, {"event": "tag_added", "tag": "VIP"}, event)
    assert found is not None and found.key == f"pb:c4:at:{AT.isoformat()}"


@pytest.mark.parametrize(
    ("trigger", "text", "keyword"),
    [
        ({"keywords": ["价格", "price"]}, "What's the PRICE?", "price"),
        ({"keywords": ["价格"]}, "请问价格多少", "价格"),
        ({"keywords": ["price"]}, "hello", None),
        ({"regex": r"\border\s*#?\d+"}, "my order #1234 is late", "order #1234"),
        ({"regex": r"^\d{11}$"}, "call 13800000000", None),
        ({}, "anything at all", None),
    ],
)
async def test_message_keywords_and_regex(
    db: Database, trigger: dict[str, Any], text: str, keyword: str | None
) -> None:
    found = await _match(db, {"event": "message_received", **trigger}, _message(text))
    if keyword is None and trigger:
        assert found is None
    else:
        assert found is not None
        assert found.context["keyword"] == keyword
        assert found.context["text"] == text


async def test_message_chat_filter_and_staff_never_trigger(db: Database) -> None:
    private = _message("hi")
    in_group = _message("hi", chat_type="group", group_id=5)
    base = {"event": "message_received"}
    assert await _match(db, base, private) is not None
    assert await _match(db, base, in_group) is None
    assert await _match(db, {**base, "chat": "group"}, private) is None
    found = await _match(db, {**base, "chat": "group"}, in_group)
    assert found is not None and found.group_id == 5
    assert await _match(db, {**base, "chat": "any"}, in_group) is not None
    staff = _message("hi", customer_id=None, staff_userid="zhangsan")
    assert await _match(db, base, staff) is None


@pytest.mark.parametrize(
    ("source", "came_through", "fires"),
    [
        ("any", "wecom:main", True),
        ("mp", "mp:news", True),
        ("mp:news", "mp:news", True),
        ("mp:news", "mp:shop", False),
        ("mp", "wecom:main", False),
        ("wecom", "wecom:main", True),
        ("mp", "mpx:news", False),
    ],
)
async def test_message_source_filter(
    db: Database, source: str, came_through: str, fires: bool
) -> None:
    event = MessageReceived(
        **{**STAMP, "source": came_through}, msg_type="text", text="价格", customer_id=1
    )
    trigger = {"event": "message_received", "keywords": ["价格"], "source": source}
    assert (await _match(db, trigger, event) is not None) is fires


async def test_groups_by_name_or_chat_id(db: Database) -> None:
    async with db.sessions.begin() as session:
        group = await add_group(session, "wrChat1", now=AT, name="VIP 群")
        group_id = group.id
    joined = JoinedGroup(
        **STAMP, group_id=group_id, chat_id="wrChat1", member_userid="wmA", customer_id=9
    )
    left = LeftGroup(
        **STAMP, group_id=group_id, chat_id="wrChat1", member_userid="wmA", customer_id=9
    )
    found = await _match(db, {"event": "joined_group", "groups": ["VIP 群"]}, joined)
    assert found is not None
    assert found.context["group_name"] == "VIP 群" and found.group_id == group_id
    assert await _match(db, {"event": "joined_group", "groups": ["wrChat1"]}, joined)
    assert await _match(db, {"event": "joined_group", "groups": ["other"]}, joined) is None
    assert await _match(db, {"event": "left_group"}, joined) is None
    assert await _match(db, {"event": "left_group", "groups": ["wrChat1"]}, left)
    staff_joined = JoinedGroup(
        **STAMP, group_id=group_id, chat_id="wrChat1", member_userid="zhangsan"
    )
    assert await _match(db, {"event": "joined_group"}, staff_joined) is None


async def test_tags_by_name_or_group_and_name(db: Database) -> None:
    async with db.sessions.begin() as session:
        level = await add_tag(session, "VIP", group="客户等级", now=AT)
        other = await add_tag(session, "VIP", group="活动", now=AT)
        await add_customer(session, "wmA", now=AT)
        level_id, other_id = level.id, other.id
    added = TagAdded(**STAMP, customer_id=1, tag_id=level_id, tag_name="VIP")
    assert await _match(db, {"event": "tag_added", "tag": "VIP"}, added)
    assert await _match(db, {"event": "tag_added", "tag": "客户等级/VIP"}, added)
    assert await _match(db, {"event": "tag_added", "tag": "活动/VIP"}, added) is None
    assert await _match(db, {"event": "tag_added", "tag": "VVIP"}, added) is None
    removed = TagRemoved(**STAMP, customer_id=1, tag_id=other_id, tag_name="VIP")
    assert await _match(db, {"event": "tag_removed", "tag": "活动/VIP"}, removed)
    assert await _match(db, {"event": "tag_added", "tag": "VIP"}, removed) is None


@pytest.mark.parametrize(
    ("by", "removed_by", "fires"),
    [
        ("any", "staff", True),
        ("customer", "customer", True),
        ("customer", "staff", False),
        ("staff", "staff", True),
    ],
)
async def test_customer_removed_by(db: Database, by: str, removed_by: str, fires: bool) -> None:
    event = CustomerRemoved(
        **STAMP, customer_id=2, external_userid="wmA", staff_userid="zs", removed_by=removed_by
    )
    found = await _match(db, {"event": "customer_removed", "by": by}, event)
    assert (found is not None) == fires
