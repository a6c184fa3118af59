"""``scrm staff transfer`` and ``scrm report staff`` as an operator runs them: processes."""

from __future__ import annotations

import asyncio
import csv
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from store.models import Enrollment, Task, TransferItem, TransferJob
from tests.bot.console.test_operator_commands import config_file, scrm
from tests.support.database import open_database
from tests.support.transfers import LEAVER, SUCCESSOR, external, seed

__all__ = ["config_file"]


async def _seed(url: str) -> None:
    database = await open_database("sqlite", url)  # no truncation: the fixture emptied it
    try:
        await seed(database, datetime.now(UTC))
    finally:
        await database.engine.dispose()


async def _read(url: str) -> tuple[list[TransferJob], list[TransferItem], list[Task], str]:
    database = await open_database("sqlite", url)
    try:
        async with database.sessions() as session:
            jobs = list(await session.scalars(select(TransferJob)))
            items = list(await session.scalars(select(TransferItem).order_by(TransferItem.id)))
            tasks = list(await session.scalars(select(Task).order_by(Task.id)))
            enrollment = (await session.scalars(select(Enrollment))).one()
            return jobs, items, tasks, str(enrollment.staff_userid)
    finally:
        await database.engine.dispose()


def test_staff_transfer_dry_run_then_for_real(
    config_file: Path, tmp_path: Path, database_url: str
) -> None:
    asyncio.run(_seed(database_url))
    dry = scrm(
        "staff", "transfer", LEAVER, SUCCESSOR, "--dry-run", config=config_file, cwd=tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    assert "would hand 3 customers, 1 groups, 1 tasks, 1 enrollments" in dry.stdout
    assert asyncio.run(_read(database_url))[0] == []

    unknown = scrm(
        "staff", "transfer", LEAVER, SUCCESSOR, "--customers", "wmNobody",
        config=config_file, cwd=tmp_path,
    )  # fmt: skip
    assert unknown.returncode == 1 and "wmNobody" in unknown.stderr

    real = scrm(
        "staff", "transfer", LEAVER, SUCCESSOR, "--customers", f"{external(1)},{external(2)}",
        config=config_file, cwd=tmp_path,
    )  # fmt: skip
    assert real.returncode == 0, real.stderr
    jobs, items, tasks, owner = asyncio.run(_read(database_url))
    assert [(j.mode.value, j.actor) for j in jobs] == [("onjob", "operator")]
    assert [i.subject for i in items] == [external(1), external(2)]
    assert [t.staff_userid for t in tasks] == [LEAVER, SUCCESSOR] and owner == SUCCESSOR
    listed = scrm("staff", "transfers", config=config_file, cwd=tmp_path)
    assert listed.returncode == 0 and f"customer {external(1)}: pending" in listed.stdout


def test_report_staff_writes_a_csv(config_file: Path, tmp_path: Path, database_url: str) -> None:
    asyncio.run(_seed(database_url))
    out = tmp_path / "staff.csv"
    result = scrm("report", "staff", "--csv", str(out), config=config_file, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert {r["who"] for r in rows} >= {LEAVER, "team dept 2"}
    assert next(r for r in rows if r["who"] == LEAVER)["customers_added"] == "3"
    backwards = scrm(
        "report", "staff", "--from", "2026-11-02", "--to", "2026-11-01",
        config=config_file, cwd=tmp_path,
    )  # fmt: skip
    assert backwards.returncode == 1 and "swap" in backwards.stderr
