"""Hot reload: a changed playbook becomes a new version in the running server; a broken one
is refused with its errors and the last good version keeps running."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import Config
from bot.file_watch import fingerprint
from bot.server import open_runtime
from sop.settings import SopSettings
from tests.support.clock import ManualClock
from tests.support.database import Database

GOOD = """name: hello
trigger: {{event: customer_added}}
steps:
  - nudge: {{script: {{text: "{text}"}}}}
"""
SCHEDULED = """name: weekly
trigger: {schedule: {cron: "0 10 * * 1"}}
steps:
  - nudge: {script: {text: "weekly call"}}
"""


def _config(db: Database, folder: Path) -> Config:
    (folder / "templates").mkdir(exist_ok=True)
    sop = SopSettings(playbooks=[str(folder / "playbooks")], templates=str(folder / "templates"))
    return Config(database_url=db.url, sop=sop)


async def test_a_change_is_a_new_version_and_a_broken_file_keeps_the_last_good(
    db: Database, clock: ManualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    file = playbooks / "hello.yaml"
    file.write_text(GOOD.format(text="hi"), encoding="utf-8")
    async with open_runtime(_config(db, tmp_path), clock=clock) as runtime:
        assert runtime.reloader is not None and runtime.scheduler is not None
        runtime.scheduler.start(60)
        try:
            assert runtime.catalog.latest("hello").version == 1
            assert await runtime.reloader.check() is None  # nothing changed

            file.write_text(GOOD.format(text="hello there"), encoding="utf-8")
            assert await runtime.reloader.check() is True
            entry = runtime.catalog.latest("hello")
            assert entry.version == 2
            assert entry.playbook.steps[0].nudge is not None
            assert entry.playbook.steps[0].nudge.script.text == "hello there"

            file.write_text(
                "name: hello\ntrigger: {event: customer_added}\nsteps:\n  - dealy: 2h\n"
            )
            with caplog.at_level(logging.ERROR):
                assert await runtime.reloader.check() is False
            assert runtime.catalog.latest("hello").version == 2  # the last good one runs on
            assert any("dealy" in error for error in runtime.reloader.errors)
            assert "keeping the last good versions" in caplog.text

            (playbooks / "weekly.yaml").write_text(SCHEDULED, encoding="utf-8")
            file.write_text(GOOD.format(text="hello there"), encoding="utf-8")
            assert await runtime.reloader.check() is True
            assert runtime.catalog.latest("hello").version == 2  # same definition, same version
            assert "playbook:weekly" in runtime.scheduler.job_ids()  # its cron job is added
        finally:
            runtime.scheduler.shutdown()


def test_fingerprint_sees_new_changed_and_removed_files(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("a", encoding="utf-8")
    before = fingerprint([tmp_path])
    first.write_text("ab", encoding="utf-8")
    changed = fingerprint([tmp_path])
    assert changed != before
    (tmp_path / "b.yaml").write_text("b", encoding="utf-8")
    added = fingerprint([tmp_path])
    assert len(added) == 2
    first.unlink()
    assert len(fingerprint([tmp_path])) == 1
    assert fingerprint([tmp_path / "missing"]) == ()
