from __future__ import annotations

from sqlalchemy import select

from bot.processing.upsert import get_or_create
from store.models import Staff
from tests.bot.processing.harness import Harness


async def test_creates_once_then_finds_the_same_row(harness: Harness) -> None:
    now = harness.clock.now()
    async with harness.db.sessions.begin() as session:
        created = await get_or_create(
            session, Staff, {"userid": "zhangsan"}, {"created_at": now, "departments": [2]}
        )
        assert created.id is not None and created.departments == [2]
        again = await get_or_create(session, Staff, {"userid": "zhangsan"}, {"created_at": now})
        assert again is created  # the identity map's object, not a copy
        other = await get_or_create(
            session, Staff, {"userid": "lisi"}, {"created_at": now, "departments": []}
        )
        assert other.id != created.id
    async with harness.db.sessions.begin() as session:
        found = await get_or_create(session, Staff, {"userid": "zhangsan"}, {"created_at": now})
        assert found.id == created.id and found.departments == [2]
        count = len((await session.scalars(select(Staff))).all())
    assert count == 2


async def test_an_existing_row_is_returned_untouched(harness: Harness) -> None:
    now = harness.clock.now()
    async with harness.db.sessions.begin() as session:
        session.add(Staff(userid="wangwu", created_at=now, departments=[7]))
    async with harness.db.sessions.begin() as session:
        found = await get_or_create(
            session, Staff, {"userid": "wangwu"}, {"created_at": now, "departments": []}
        )
        assert found.departments == [7]
