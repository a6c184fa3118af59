"""``scrm campaign`` as an operator runs it: a real process on a migrated SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

from store.db import create_engine, session_factory
from tests.support.cli import run_scrm
from tests.support.clock import ManualClock
from tests.support.engine_factories import add_customer, add_staff, add_tag, tag_customer

REPO = Path(__file__).resolve().parents[3]


def scrm(*args: str, cwd: Path, database: Path) -> subprocess.CompletedProcess[str]:
    return run_scrm(*args, cwd=cwd, env={"SCRM_DATABASE_URL": f"sqlite:///{database}"})


def test_plan_refuses_an_empty_audience_and_status_needs_a_run(tmp_path: Path) -> None:
    database = tmp_path / "scrm.db"
    assert scrm("db", "upgrade", cwd=REPO, database=database).returncode == 0
    done = scrm("campaign", "plan", "vip_launch", cwd=REPO, database=database)
    assert done.returncode == 1, done.stderr
    assert "refused: campaign 'vip_launch' has no recipient: the audience matches nobody" in (
        done.stderr
    )
    done = scrm("campaign", "status", "vip_launch", cwd=REPO, database=database)
    assert done.returncode == 1
    assert "campaign 'vip_launch' has no run: start it first" in done.stderr


def test_an_unknown_campaign_names_the_known_ones(tmp_path: Path) -> None:
    database = tmp_path / "scrm.db"
    done = scrm("campaign", "plan", "vip_lunch", cwd=REPO, database=database)
    assert done.returncode == 1
    assert "no valid campaign 'vip_lunch' in campaigns" in done.stderr
    assert "vip_follow_up, vip_launch, weekly_group_tip" in done.stderr


def test_start_refuses_what_plan_refuses_before_any_run_exists(tmp_path: Path) -> None:
    database = tmp_path / "scrm.db"
    assert scrm("db", "upgrade", cwd=REPO, database=database).returncode == 0
    done = scrm("campaign", "start", "vip_launch", cwd=REPO, database=database)
    assert done.returncode == 1, done.stdout
    assert "refused: campaign 'vip_launch' has no recipient: the audience matches nobody" in (
        done.stderr
    )
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM campaign_runs").fetchone() == (0,)


async def _seed_vips(database: Path, count: int) -> None:
    """Staff zhangsan and ``count`` VIP customers of theirs, in the operator's database."""
    engine = create_engine(f"sqlite:///{database}")
    now = ManualClock().now()
    try:
        async with session_factory(engine).begin() as session:
            await add_staff(session, "zhangsan", now=now, name="张三")
            vip = await add_tag(session, "VIP", now=now)
            for n in range(count):
                customer = await add_customer(session, f"wmCli{n}", now=now, owner="zhangsan")
                await tag_customer(session, customer.id, vip, now=now)
    finally:
        await engine.dispose()


def test_start_fans_out_once_and_a_second_start_is_refused_while_it_runs(
    tmp_path: Path,
) -> None:
    database = tmp_path / "scrm.db"
    assert scrm("db", "upgrade", cwd=REPO, database=database).returncode == 0
    asyncio.run(_seed_vips(database, 3))
    done = scrm("campaign", "start", "vip_launch", cwd=REPO, database=database)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("vip_launch run 1: 1 batch(es), 3 recipients")
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM campaign_recipients").fetchone() == (3,)
    again = scrm("campaign", "start", "vip_launch", cwd=REPO, database=database)
    assert again.returncode == 1
    assert "run 1 is running; resume, pause or cancel it before starting another" in again.stderr
