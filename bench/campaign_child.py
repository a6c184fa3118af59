"""The three jobs of ``bench.campaign``, each run in a fresh process so its peak RSS is its own.

- ``seed``: migrate the database and write the audience with raw bulk inserts in chunks
  (staff, the ``VIP`` tag, customers, who follows whom, the tag on every customer); on
  PostgreSQL, ``ANALYZE`` as autovacuum would after such an import.
- ``fanout``: what ``scrm campaign plan`` and ``scrm campaign start`` do: plan the campaign
  (streamed, writes nothing), create its run and fan it out (render, recipient rows, mass
  outbox rows, frequency-cap ledger) in batches.
- ``floor``: the same recipient, outbox and frequency-cap ledger rows written again (copied
  under a second run and new keys) with bare Core executemany INSERTs, one transaction per
  batch, no reads or rendering: the database's share of the fan-out.

Each prints one JSON line: seconds, rows and its peak RSS in MiB.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.engine_timing import peak_rss_mib
from sop.campaigns import control
from sop.campaigns.fanout import Fanout
from sop.campaigns.model import Campaign
from sop.campaigns.plan import make_plan
from sop.clock import SystemClock
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.db import create_engine, session_factory
from store.migrate import upgrade
from store.models import (
    CampaignRecipient,
    CampaignRun,
    Customer,
    CustomerStaff,
    CustomerTag,
    FollowState,
    MarketingTouch,
    OutboxRow,
    Staff,
    Tag,
    TagSource,
)

ZONE = "Asia/Shanghai"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
STAFF = 50
CHUNK = 10_000
#: One customer in OPTED_EVERY has opted out: the plan and fan-out exclude them.
OPTED_EVERY = 50


def bench_campaign() -> Campaign:
    return Campaign.model_validate(
        {
            "name": "bench",
            "channel": "mass",
            "audience": {"tags": {"any": ["VIP"]}},
            "content": {"text": "新品上线，{{ owner.name }} 为您预留了名额"},
        }
    )


async def seed(sessions: async_sessionmaker[AsyncSession], customers: int) -> dict[str, Any]:
    now = SystemClock().now()
    started = time.perf_counter()
    async with sessions.begin() as session:
        staff = [
            {"userid": f"staff{m}", "name": f"员工{m}", "created_at": now} for m in range(STAFF)
        ]
        await session.execute(insert(Staff), staff)
        tag_id = await session.scalar(
            insert(Tag).values(name="VIP", created_at=now).returning(Tag.id)
        )
    for first in range(0, customers, CHUNK):
        numbers = range(first, min(first + CHUNK, customers))
        async with sessions.begin() as session:
            await session.execute(
                insert(Customer),
                [
                    {
                        "external_userid": f"wmBench{i:07d}",
                        "name": f"客户{i}",
                        "created_at": now,
                        "opted_out_at": now - timedelta(days=1) if i % OPTED_EVERY == 0 else None,
                    }
                    for i in numbers
                ],
            )
            ids = (
                await session.scalars(
                    select(Customer.id).where(Customer.id > 0).order_by(Customer.id.desc())
                    .limit(len(numbers))
                )
            ).all()  # fmt: skip
            follows = [
                {
                    "customer_id": cid,
                    "staff_userid": f"staff{cid % STAFF}",
                    "state": FollowState.ACTIVE,
                    "added_at": now,
                }
                for cid in ids
            ]
            await session.execute(insert(CustomerStaff), follows)
            tags = [
                {"customer_id": cid, "tag_id": tag_id, "source": TagSource.WECOM, "added_at": now}
                for cid in ids
            ]
            await session.execute(insert(CustomerTag), tags)
    if sessions.kw["bind"].dialect.name == "postgresql":
        async with sessions.begin() as session:
            # What autovacuum does within a minute of a bulk import: without statistics the
            # planner hashes every tagged customer for each batch of the audience.
            await session.execute(text("ANALYZE"))
    return {"seconds": time.perf_counter() - started, "rows": customers}


async def fanout(sessions: async_sessionmaker[AsyncSession], batch: int) -> dict[str, Any]:
    clock, campaign, settings = SystemClock(), bench_campaign(), SopSettings()
    renderer = Renderer(TEMPLATES)
    started = time.perf_counter()
    async with sessions() as session:
        plan = await make_plan(
            session, campaign, renderer=renderer, settings=settings, zone_default=ZONE,
            now=clock.now(),
        )  # fmt: skip
    assert plan.ok, plan.refusals
    planned = time.perf_counter()
    async with sessions.begin() as session:
        run_id = (
            await control.create_run(session, campaign, now=clock.now(), zone_default=ZONE)
        ).id
    await Fanout(sessions, renderer, settings, clock, ZONE, batch_size=batch).run(run_id)
    done = time.perf_counter()
    async with sessions() as session:
        run = await session.get(CampaignRun, run_id)
        assert run is not None and run.fanned_out_at is not None
        recipients = int(run.counts["recipients"])
        outbox = await session.scalar(select(OutboxRow.id).order_by(OutboxRow.id.desc()).limit(1))
        touches = await session.scalar(select(func.count()).select_from(MarketingTouch))
    return {
        "plan_seconds": planned - started,
        "seconds": done - planned,
        "matched": plan.matched,
        "included": plan.included,
        "recipients": recipients,
        "outbox": int(outbox or 0),
        "touches": int(touches or 0),
        "rows": recipients + int(outbox or 0) + int(touches or 0),
    }


async def floor(sessions: async_sessionmaker[AsyncSession], batch: int) -> dict[str, Any]:
    """Copy run 1's recipient, outbox and ledger rows under run 2, batch by batch of
    recipients, with bare Core executemany INSERTs (the rows are read before the clock
    starts)."""
    async with sessions() as session:
        source = await session.get(CampaignRun, 1)
        assert source is not None
        recipients = select(CampaignRecipient).order_by(CampaignRecipient.id)
        people = [_values(p, "id") for p in await session.scalars(recipients)]
        outbox = select(OutboxRow).order_by(OutboxRow.id)
        rows = {r.idempotency_key: _values(r, "id") for r in await session.scalars(outbox)}
        ledger = select(MarketingTouch).order_by(MarketingTouch.id)
        touches = {t.customer_id: _values(t, "id") for t in await session.scalars(ledger)}
    run_table, recipient_table, outbox_table, touch_table = (
        cast(Table, model.__table__)
        for model in (CampaignRun, CampaignRecipient, OutboxRow, MarketingTouch)
    )
    started = time.perf_counter()
    async with sessions.begin() as session:
        values = _values(source)
        values.update(id=2, number=2, fire_time=source.fire_time + timedelta(seconds=1))
        await (await session.connection()).execute(insert(run_table), [values])
    written = 0
    for first in range(0, len(people), batch):
        chunk = people[first : first + batch]
        keys = {str(p["outbox_key"]) for p in chunk if p["outbox_key"]}
        async with sessions.begin() as session:
            connection = await session.connection()
            await connection.execute(
                insert(recipient_table),
                [p | {"run_id": 2, "outbox_key": p["outbox_key"] and f"floor:{p['outbox_key']}"}
                 for p in chunk],
            )  # fmt: skip
            copies = [rows.pop(k) | {"idempotency_key": f"floor:{k}"} for k in keys if k in rows]
            if copies:
                await connection.execute(insert(outbox_table), copies)
            marks = [touches[p["customer_id"]] for p in chunk if p["customer_id"] in touches]
            if marks:
                await connection.execute(insert(touch_table), marks)
        written += len(chunk) + len(copies) + len(marks)
    return {"seconds": time.perf_counter() - started, "rows": written}


def _values(row: Any, *skip: str) -> dict[str, Any]:
    """A mapped row as the column values an INSERT takes."""
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in skip}


async def main(kind: str, url: str, customers: int, batch: int) -> None:
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        if kind == "seed":
            await upgrade(engine)
            result = await seed(sessions, customers)
        elif kind == "fanout":
            result = await fanout(sessions, batch)
        else:
            result = await floor(sessions, batch)
    finally:
        await engine.dispose()
    print(json.dumps(result | {"peak_rss_mib": peak_rss_mib()}), flush=True)
