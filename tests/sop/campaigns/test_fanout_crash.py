"""A campaign fan-out killed with SIGKILL mid-way and started again messages nobody twice.

The fan-out runs in a process of its own (:mod:`tests.support.campaign_process`) over 20,000
customers in batches of 250. The test kills it once some recipient rows exist, checks that
not all do (the kill came mid-way), and runs ``start`` again, which finishes the interrupted
run from its cursor. The proof is in the tables: one ``campaign_recipients`` row per matched
customer, and every eligible customer in exactly one mass outbox row (a mass row holds the
external userids of one owner's recipients in one batch), the one its recipient row names.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from sop.clock import SystemClock
from sop.delivery.messages import MASS
from store.models import (
    CampaignRecipient,
    CampaignRun,
    Customer,
    CustomerStaff,
    CustomerTag,
    FollowState,
    OutboxRow,
    RunState,
    Staff,
    Tag,
    TagSource,
)
from tests.support.campaign_process import CRASH_TAG
from tests.support.database import Database

ROOT = Path(__file__).resolve().parents[3]
CUSTOMERS, STAFF, BATCH = 20_000, 20, 250
#: Every OPTED_EVERY-th customer opted out, every ORPHAN_EVERY-th has no owner.
OPTED_EVERY, ORPHAN_EVERY = 40, 97
#: Customers without the tag: not in the audience, so no recipient row.
OUTSIDERS = 300
pytestmark = pytest.mark.slow


def _eligible(index: int) -> bool:
    return index % OPTED_EVERY != 0 and index % ORPHAN_EVERY != 0


async def _seed(db: Database) -> dict[int, str]:
    """Raw bulk inserts (a few executemany statements); the eligible customers' external
    userids by customer id."""
    now = SystemClock().now()
    async with db.sessions.begin() as session:
        await session.execute(
            insert(Staff),
            [
                {"userid": f"staff{m}", "name": f"员工{m}", "status": 1, "created_at": now}
                for m in range(STAFF)
            ],
        )
        tag_id = await session.scalar(
            insert(Tag).values(name=CRASH_TAG, created_at=now).returning(Tag.id)
        )
        await session.execute(
            insert(Customer),
            [
                {
                    "external_userid": f"wmCrash{i:05d}",
                    "name": f"客户{i}",
                    "created_at": now,
                    "opted_out_at": now - timedelta(days=1) if i % OPTED_EVERY == 0 else None,
                }
                for i in range(CUSTOMERS + OUTSIDERS)
            ],
        )
        ids = {
            external: cid
            for cid, external in await session.execute(
                select(Customer.id, Customer.external_userid)
            )
        }
        index = {ids[f"wmCrash{i:05d}"]: i for i in range(CUSTOMERS + OUTSIDERS)}
        await session.execute(
            insert(CustomerStaff),
            [
                {
                    "customer_id": cid,
                    "staff_userid": f"staff{i % STAFF}",
                    "state": FollowState.ACTIVE,
                    "added_at": now,
                }
                for cid, i in index.items()
                if i % ORPHAN_EVERY != 0
            ],
        )
        await session.execute(
            insert(CustomerTag),
            [
                {"customer_id": cid, "tag_id": tag_id, "source": TagSource.WECOM, "added_at": now}
                for cid, i in index.items()
                if i < CUSTOMERS
            ],
        )
    return {cid: f"wmCrash{i:05d}" for cid, i in index.items() if i < CUSTOMERS and _eligible(i)}


async def _start(db: Database, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.campaign_process",
            db.url,
            str(BATCH),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )


def _read(log: Path) -> str:
    return log.read_text(errors="replace")


async def _recipient_rows(db: Database) -> int:
    async with db.sessions() as session:
        query = select(func.count()).select_from(CampaignRecipient)
        return int(await session.scalar(query) or 0)


async def _kill_mid_fanout(db: Database, process: asyncio.subprocess.Process, log: Path) -> int:
    """SIGKILL ``process`` as soon as the first batches committed; the rows it left."""
    for _ in range(6000):
        if await _recipient_rows(db) > 0 or process.returncode is not None:
            break
        await asyncio.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    code = await process.wait()
    assert code == -signal.SIGKILL, f"exit {code} before the kill; log:\n{_read(log)}"
    return await _recipient_rows(db)


async def test_kill_9_mid_fanout_then_start_again(db: Database, tmp_path: Path) -> None:
    log = tmp_path / "campaign.log"
    eligible = await _seed(db)

    first = await _start(db, log)
    left = await _kill_mid_fanout(db, first, log)
    assert 0 < left < CUSTOMERS, left  # the kill came mid-way

    second = await _start(db, log)
    out, _ = await asyncio.wait_for(second.communicate(), timeout=300)
    assert second.returncode == 0, _read(log)
    _done, run_id, _batches = out.decode().split()

    async with db.sessions() as session:
        runs = (await session.scalars(select(CampaignRun))).all()
        people = (await session.scalars(select(CampaignRecipient))).all()
        outbox = (await session.scalars(select(OutboxRow))).all()

    # One run, resumed rather than started anew, and finished.
    [run] = runs
    assert str(run.id) == run_id and run.state is RunState.RUNNING
    assert run.fanned_out_at is not None and run.batches == CUSTOMERS // BATCH

    # One recipient row per matched customer; the eligible ones included, the rest excluded.
    assert Counter(p.recipient for p in people).most_common(1)[0][1] == 1
    assert len(people) == CUSTOMERS
    included = {int(p.customer_id or 0): p for p in people if p.excluded is None}
    assert set(included) == set(eligible)
    opted = [i for i in range(CUSTOMERS) if i % OPTED_EVERY == 0]
    orphans = [i for i in range(CUSTOMERS) if i % ORPHAN_EVERY == 0 and i % OPTED_EVERY]
    assert Counter(p.excluded for p in people if p.excluded) == {
        "opted_out": len(opted),  # opting out comes first among the reasons
        "no_owner": len(orphans),
    }
    assert run.counts["included"] == len(eligible)

    # Every eligible customer in exactly one outbox row: the one its recipient row names.
    assert all(row.channel == MASS for row in outbox)
    by_key: dict[str, Any] = {row.idempotency_key: row for row in outbox}
    assert len(by_key) == len(outbox)
    covered = Counter(u for row in outbox for u in row.payload["external_userid"])
    assert covered == Counter(eligible.values()), "a customer was left out or messaged twice"
    for customer_id, person in included.items():
        row = by_key[str(person.outbox_key)]
        assert eligible[customer_id] in row.payload["external_userid"]
        assert row.recipient == person.owner
    assert {p.outbox_key for p in included.values()} == set(by_key)  # no stray rows
