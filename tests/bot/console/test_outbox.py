"""``scrm outbox`` against a real database: list, show, resend, cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select

from bot.console.context import CliState
from bot.console.outbox import outbox
from sop.delivery import enqueue, messages
from store.models import OutboxRow, OutboxState
from tests.support.clock import ManualClock
from tests.support.database import Database


async def _scrm(db: Database, tmp_path: Path, *args: str) -> Result:
    config = tmp_path / "config.yaml"
    config.write_text(f"database_url: {db.url}\n", encoding="utf-8")
    runner = CliRunner()
    # The command runs its own event loop: give it a thread of its own.
    return await asyncio.to_thread(runner.invoke, outbox, list(args), obj=CliState(str(config)))


async def _seed(db: Database, clock: ManualClock) -> tuple[int, int]:
    async with db.sessions.begin() as session:
        for key, text in (("nudge:a", "回访 Alice"), ("nudge:b", "回访 Bob")):
            await enqueue(
                session,
                key=key,
                channel="wecom_app",
                recipient="zhangsan",
                payload=messages.text(text),
                due_at=clock.now(),
            )
    async with db.sessions.begin() as session:
        rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
        rows[0].state = OutboxState.FAILED
        rows[0].last_errcode = 81013
        rows[0].last_error = "WeCom API message/send failed: errcode 81013"
        return rows[0].id, rows[1].id


async def test_ls_show_resend_cancel(db: Database, clock: ManualClock, tmp_path: Path) -> None:
    failed, pending = await _seed(db, clock)

    listing = await _scrm(db, tmp_path, "ls")
    assert listing.exit_code == 0, listing.output
    assert "errcode 81013" in listing.output
    assert "回访 Bob" in listing.output
    assert "failed: 1, pending: 1" in listing.output

    shown = await _scrm(db, tmp_path, "show", str(failed))
    assert shown.exit_code == 0, shown.output
    assert "key:       nudge:a" in shown.output
    assert '"content": "回访 Alice"' in shown.output

    resent = await _scrm(db, tmp_path, "resend", str(failed))
    assert resent.output == f"{failed}: queued again (was failed)\n"
    cancelled = await _scrm(db, tmp_path, "cancel", str(pending), "42")
    assert cancelled.output == f"{pending}: cancelled\n42: no such outbox row\n"

    only_cancelled = await _scrm(db, tmp_path, "ls", "--state", "cancelled")
    assert "回访 Bob" in only_cancelled.output
    assert "回访 Alice" not in only_cancelled.output
    missing = await _scrm(db, tmp_path, "show", "42")
    assert missing.exit_code == 1
    assert "no outbox row 42" in missing.output
