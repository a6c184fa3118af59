from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import cast

import pytest
from sqlalchemy import Connection, Table, func, insert, select, update

from store.batch import Batch, UnitStatementError
from store.models import Staff
from tests.support.database import Database

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
STAFF = cast(Table, Staff.__table__)


class StaffInsert:
    """A deferred write for the tests: one staff row per item (a userid)."""

    order = 1

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def write(self, connection: Connection, items: list[str]) -> None:
        self.calls.append(list(items))
        rows = [{"userid": u, "departments": [], "created_at": NOW} for u in items]
        connection.execute(insert(STAFF), rows)


async def userids(db: Database) -> list[str]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Staff.userid).order_by(Staff.userid))).all())


async def test_deferred_writes_go_out_in_one_statement_and_a_failed_unit_takes_its_own_back(
    db: Database,
) -> None:
    write, undone, failed = StaffInsert(), list[str](), list[str]()
    async with db.sessions() as session, session.begin(), Batch(session) as batch:
        for userid in ("a", "b", "c"):
            try:
                async with batch.unit():
                    batch.defer(write, userid)
                    batch.on_undo(partial(undone.append, userid))
                    if userid == "b":
                        raise RuntimeError("row b fails")
            except RuntimeError:
                failed.append(userid)
        assert write.calls == []
        await batch.flush()
    assert write.calls == [["a", "c"]]
    assert undone == failed == ["b"]
    assert await userids(db) == ["a", "c"]


async def test_a_statement_needs_the_units_savepoint_which_a_failure_rolls_back(
    db: Database,
) -> None:
    write = StaffInsert()
    async with db.sessions() as session, session.begin(), Batch(session) as batch:
        async with batch.unit():
            batch.defer(write, "early")
        with pytest.raises(UnitStatementError, match="before Batch.savepoint"):
            async with batch.unit():
                await session.execute(select(func.count()).select_from(Staff))
        with pytest.raises(RuntimeError, match="late fails"):
            async with batch.unit():
                batch.defer(write, "late")
                await batch.savepoint()
                # the earlier unit's writes are in, and so are this one's own
                assert await session.scalar(select(func.count()).select_from(Staff)) == 2
                await session.execute(update(Staff).values(name="renamed"))
                raise RuntimeError("late fails")
        await batch.flush()
    assert await userids(db) == ["early"]
    async with db.sessions() as session:
        assert await session.scalar(select(Staff.name)) is None


async def test_a_units_own_writes_change_the_generation_the_batchs_do_not(db: Database) -> None:
    write = StaffInsert()
    async with db.sessions() as session, session.begin(), Batch(session) as batch:
        before = batch.generation("staff")
        async with batch.unit():
            batch.defer(write, "a")
        await batch.flush()
        assert batch.generation("staff") == before
        async with batch.unit():
            await batch.savepoint()
            await session.execute(update(Staff).values(name="x"))
        assert batch.generation("staff") == before + 1
        assert batch.generation("customers") == 0


async def test_orm_changes_without_the_savepoint_fail_the_unit(db: Database) -> None:
    async with db.sessions() as session, session.begin(), Batch(session) as batch:
        with pytest.raises(UnitStatementError, match="ORM objects"):
            async with batch.unit():
                session.add(Staff(userid="orm", departments=[], created_at=NOW))
        assert not session.new
        async with batch.unit():
            await batch.savepoint()
            session.add(Staff(userid="orm", departments=[], created_at=NOW))
    assert await userids(db) == ["orm"]


async def test_isolated_units_write_at_once_so_a_bad_write_fails_its_own_unit(
    db: Database,
) -> None:
    write = StaffInsert()
    failed: list[str] = []
    async with db.sessions() as session, session.begin(), Batch(session, isolated=True) as batch:
        for userid in ("a", "a", "b"):  # the second "a" breaks the unique userid
            try:
                async with batch.unit():
                    batch.defer(write, userid)
            except Exception:
                failed.append(userid)
        await batch.flush()
    assert failed == ["a"]
    assert await userids(db) == ["a", "b"]
