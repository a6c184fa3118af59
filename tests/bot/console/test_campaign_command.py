"""``scrm campaign`` as an operator runs it: a real process on a migrated SQLite file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.cli import run_scrm

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
