from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from store.db import normalize_url
from store.migrate import current_revision, head_revision
from store.models import Customer, InboxRow, InboxState
from tests.support.database import Database


async def test_migrated_to_head(db: Database) -> None:
    assert await current_revision(db.engine) == head_revision()


async def test_times_come_back_aware_utc(db: Database) -> None:
    shanghai = timezone(timedelta(hours=8))
    when = datetime(2026, 11, 23, 18, 30, tzinfo=shanghai)
    async with db.sessions.begin() as session:
        session.add(Customer(external_userid="wm1", created_at=when))
    async with db.sessions() as session:
        customer = (await session.scalars(select(Customer))).one()
    assert customer.created_at == when
    assert customer.created_at.tzinfo is not None
    assert customer.created_at.utcoffset() == timedelta(0)


async def test_naive_datetime_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        async with db.sessions.begin() as session:
            session.add(Customer(external_userid="wm1", created_at=datetime(2026, 1, 1)))  # noqa: DTZ001
            await session.flush()


async def test_inbox_dedupe_key_is_unique(db: Database) -> None:
    now = datetime.now(UTC)

    def row() -> InboxRow:
        return InboxRow(
            source="wecom:app",
            dedupe_key="k1",
            content_type="xml",
            payload="<xml/>",
            received_at=now,
        )

    async with db.sessions.begin() as session:
        session.add(row())
    with pytest.raises(IntegrityError):
        async with db.sessions.begin() as session:
            session.add(row())
    async with db.sessions() as session:
        rows = (await session.scalars(select(InboxRow))).all()
    assert [r.state for r in rows] == [InboxState.PENDING]


def test_urls_map_to_async_drivers() -> None:
    assert normalize_url("sqlite:///var/x.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("postgresql://u@h/d").drivername == "postgresql+asyncpg"
    with pytest.raises(ValueError, match="unsupported database URL"):
        normalize_url("mysql://u@h/d")
