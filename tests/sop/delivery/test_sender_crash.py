"""A sender SIGKILLed three times while sending 1,000 welcome messages, restarted each time:
no customer gets a message twice, only the sends in flight at a kill are in doubt, every
other row is sent, and the doubts are settled by asking WeCom (the codes are still valid)."""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, or_, select

from sop.clock import SystemClock
from sop.delivery import enqueue, messages
from sop.delivery.messages import WELCOME
from store.models import OutboxRow, OutboxState
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom, running_fake_wecom
from tests.support.outbox import until

ROOT = Path(__file__).resolve().parents[3]
CUSTOMERS, MEMBERS = 1000, 40
CONCURRENCY, BATCH, LEASE_SECONDS = 8, 100, "2"
KILL_AT = (250, 500, 750)  # welcome calls the fake has received
WELCOME_API = "externalcontact/send_welcome_msg"
pytestmark = pytest.mark.slow


async def _seed(db: Database, fake: FakeWecom) -> None:
    now = SystemClock().now()
    fake.outbound.welcome_validity = timedelta(minutes=10)
    for m in range(MEMBERS):
        fake.add_staff(f"staff{m}")
    async with db.sessions.begin() as session:
        for i in range(CUSTOMERS):
            code = fake.add_welcome_code(f"wmCustomer{i}", f"staff{i % MEMBERS}")
            await enqueue(
                session,
                key=f"welcome:{i}",
                channel=WELCOME,
                recipient=f"wmCustomer{i}",
                payload=messages.welcome(code, f"你好 {i}"),
                due_at=now,
            )


async def _start(db: Database, fake: FakeWecom, log: Path) -> asyncio.subprocess.Process:
    args = [db.url, fake.base_url, fake.corp_id, fake.secret, LEASE_SECONDS]
    args += [str(CONCURRENCY), str(BATCH)]
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


def _reached(fake: FakeWecom, calls: int) -> bool:
    return len(fake.calls_to(WELCOME_API)) >= calls


async def _unfinished(db: Database) -> int:
    """Rows a sender still has work on: due, held, or uncertain and waiting to be settled."""
    async with db.sessions() as session:
        query = select(func.count()).where(
            or_(
                OutboxRow.state.in_([OutboxState.PENDING, OutboxState.SENDING]),
                (OutboxRow.state == OutboxState.UNCERTAIN) & OutboxRow.settle_at.is_not(None),
            )
        )
        return int(await session.scalar(query) or 0)


async def test_three_kills_leave_in_doubt_only_the_sends_in_flight(
    db: Database, tmp_path: Path
) -> None:
    log = tmp_path / "sender.log"
    async with running_fake_wecom() as fake:
        await _seed(db, fake)
        fake.delay(WELCOME_API, 0.02)
        sender = await _start(db, fake, log)
        for kill_at in KILL_AT:
            reached = functools.partial(_reached, fake, kill_at)
            await until(reached, what=f"{kill_at} welcome calls", seconds=60)
            sender.send_signal(signal.SIGKILL)
            assert await sender.wait() == -signal.SIGKILL
            sender = await _start(db, fake, log)
        try:
            for _ in range(1200):
                if await _unfinished(db) == 0:
                    break
                await asyncio.sleep(0.05)
            assert await _unfinished(db) == 0, log.read_text()
        finally:
            sender.send_signal(signal.SIGTERM)
            assert await sender.wait() == 0, log.read_text()

        async with db.sessions() as session:
            rows = (await session.scalars(select(OutboxRow))).all()
        calls = Counter(c.json["welcome_code"] for c in fake.calls_to(WELCOME_API))
        delivered = Counter(d.to for d in fake.outbound.deliveries if d.api == WELCOME_API)

    assert max(delivered.values()) == 1  # no customer received a message twice
    # In doubt: uncertain, or settled by asking the platform. Only rows marked attempted
    # (their request in flight, or about to leave) at a kill can be, at most `concurrency`
    # each time; rows merely claimed went back to pending and were sent.
    in_doubt = [r for r in rows if r.state is OutboxState.UNCERTAIN or "settled" in r.platform_ids]
    assert 1 <= len(in_doubt) <= len(KILL_AT) * CONCURRENCY, [r.id for r in in_doubt]
    twice = {code for code, n in calls.items() if n > 1}  # asked again to settle it
    assert twice <= {r.payload["welcome_code"] for r in in_doubt}
    assert all(delivered[row.recipient] == 1 for row in rows)
    assert all(r.state is OutboxState.SENT for r in rows)  # the settler resolved every doubt
