"""A sender killed with SIGKILL mid-batch and restarted never sends a customer message twice."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sop.clock import SystemClock
from sop.delivery import enqueue, messages
from sop.delivery.messages import STAFF_APP, WELCOME
from store.models import OutboxRow, OutboxState
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom, running_fake_wecom
from tests.support.outbox import until

ROOT = Path(__file__).resolve().parents[3]
WELCOMES, NUDGES, MEMBERS = 600, 400, 40
WELCOME_API, SEND = "externalcontact/send_welcome_msg", "message/send"
pytestmark = pytest.mark.slow


async def _seed(db: Database, fake: FakeWecom) -> None:
    now = SystemClock().now()
    fake.outbound.member_limits = ()
    fake.outbound.welcome_validity = timedelta(minutes=10)
    for m in range(MEMBERS):
        fake.add_staff(f"staff{m}")
    async with db.sessions.begin() as session:
        for i in range(WELCOMES):
            code = fake.add_welcome_code(f"wmCustomer{i}", f"staff{i % MEMBERS}")
            await enqueue(
                session,
                key=f"welcome:{i}",
                channel=WELCOME,
                recipient=f"wmCustomer{i}",
                payload=messages.welcome(code, f"你好 {i}"),
                due_at=now,
            )
        for i in range(NUDGES):
            await enqueue(
                session,
                key=f"nudge:{i}",
                channel=STAFF_APP,
                recipient=f"staff{i % MEMBERS}",
                payload=messages.text(f"提醒 {i}"),
                due_at=now,
            )


async def _start(db: Database, fake: FakeWecom, log: Path) -> asyncio.subprocess.Process:
    args = [db.url, fake.base_url, fake.corp_id, fake.secret, "2"]
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.sender_process",
            *args,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )


async def _open_rows(db: Database) -> int:
    async with db.sessions() as session:
        open_states = [OutboxState.PENDING, OutboxState.SENDING]
        query = select(func.count()).where(OutboxRow.state.in_(open_states))
        return int(await session.scalar(query) or 0)


async def test_kill_9_mid_batch_then_restart(db: Database, tmp_path: Path) -> None:
    log = tmp_path / "sender.log"
    async with running_fake_wecom() as fake:
        await _seed(db, fake)
        fake.delay(SEND, 0.02)
        fake.delay(WELCOME_API, 0.02)

        first = await _start(db, fake, log)
        await until(lambda: len(fake.calls) >= 300, what="a third of the sends", seconds=30)
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        calls_at_kill = len(fake.calls)

        second = await _start(db, fake, log)
        try:
            for _ in range(600):
                if await _open_rows(db) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await _open_rows(db) == 0, log.read_text()
        finally:
            second.send_signal(signal.SIGTERM)
            assert await second.wait() == 0, log.read_text()

        async with db.sessions() as session:
            rows = (await session.scalars(select(OutboxRow))).all()
        welcome_calls = Counter(c.json["welcome_code"] for c in fake.calls_to(WELCOME_API))
        delivered = Counter(d.to for d in fake.outbound.deliveries if d.api == WELCOME_API)

    assert calls_at_kill < WELCOMES + NUDGES  # the kill really came mid-way
    states = Counter(r.state for r in rows)
    assert set(states) <= {OutboxState.SENT, OutboxState.UNCERTAIN}, states
    assert max(welcome_calls.values()) == 1  # no customer message was ever tried twice
    assert max(delivered.values()) == 1
    for row in rows:
        if row.channel == WELCOME and row.state is OutboxState.SENT:
            assert delivered[row.recipient] == 1
    nudges = [r for r in rows if r.channel == STAFF_APP]
    assert all(r.state is OutboxState.SENT for r in nudges)  # staff rows are resent instead
