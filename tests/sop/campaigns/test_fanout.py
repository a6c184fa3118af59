"""Plan, start (fan-out), pause, resume and cancel, on both backends with a manual clock."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sop.campaigns import control
from sop.campaigns.eligibility import variant_of
from sop.campaigns.model import Campaign
from sop.campaigns.plan import make_plan
from sop.delivery.messages import MASS, STAFF_APP
from sop.rendering.renderer import Renderer
from sop.settings import SopSettings
from store.models import CampaignRun, OutboxState, RunState, Task
from tests.sop.campaigns.world import (
    TEMPLATES,
    ZONE,
    campaign,
    fanout,
    outbox_rows,
    recipients,
    seed,
    touch,
)
from tests.support.clock import ManualClock
from tests.support.database import Database


async def start(db: Database, clock: ManualClock, definition: Campaign, **settings: Any) -> int:
    async with db.sessions.begin() as session:
        run = await control.create_run(session, definition, now=clock.now(), zone_default=ZONE)
        run_id = run.id
    await fanout(db, clock, **settings).run(run_id)
    return run_id


async def test_plan_counts_per_owner_and_each_exclusion_and_writes_nothing(
    db: Database, clock: ManualClock
) -> None:
    ids = await seed(db, clock)
    await touch(db, ids["wm000"], clock)
    await touch(db, ids["wm000"], clock)  # the shared cap (2 a day) is reached
    async with db.sessions() as session:
        plan = await make_plan(
            session,
            campaign(),
            renderer=Renderer(TEMPLATES),
            settings=SopSettings(),
            zone_default=ZONE,
            now=clock.now(),
        )
    assert plan.ok, plan.refusals
    assert (plan.matched, plan.included) == (8, 5)
    assert plan.excluded == Counter({"opted_out": 1, "no_owner": 1, "capped": 1})
    assert plan.by_owner == Counter({("zhangsan", "mass"): 2, ("lisi", "mass"): 3})
    [sample] = plan.samples
    assert sample.text.startswith("新品上线，") and "为您预留了名额" in sample.text
    assert await outbox_rows(db) == []
    assert await recipients(db) == []


async def test_plan_refuses_an_empty_audience_and_a_text_over_the_limit(
    db: Database, clock: ManualClock
) -> None:
    await seed(db, clock)
    nobody = campaign(audience={"tags": {"any": ["无此标签"]}})
    too_long = campaign(content={"text": "长" * 1400})
    async with db.sessions() as session:
        plans = [
            await make_plan(
                session,
                c,
                renderer=Renderer(TEMPLATES),
                settings=SopSettings(),
                zone_default=ZONE,
                now=clock.now(),
            )
            for c in (nobody, too_long)
        ]
    assert plans[0].refusals == ["campaign 'vip' has no recipient: the audience matches nobody"]
    [refusal] = plans[1].refusals
    assert "4200 bytes in UTF-8, the platform takes at most 4000" in refusal


async def test_start_writes_one_mass_row_per_owner_and_one_recipient_row_each(
    db: Database, clock: ManualClock
) -> None:
    ids = await seed(db, clock)
    run_id = await start(db, clock, campaign())
    rows = await outbox_rows(db)
    assert sorted((r.channel, r.recipient, r.idempotency_key) for r in rows) == [
        (MASS, "lisi", f"campaign:{run_id}:lisi:1"),
        (MASS, "zhangsan", f"campaign:{run_id}:zhangsan:1"),
    ]
    by_owner = {r.recipient: sorted(r.payload["external_userid"]) for r in rows}
    assert by_owner == {
        "zhangsan": ["wm000", "wm002", "wm004"],
        "lisi": ["wm001", "wm003", "wm005"],
    }
    people = await recipients(db)
    assert len(people) == 8  # every match once, excluded ones with their reason
    assert {p.recipient: p.excluded for p in people if p.excluded} == {
        f"c{ids['opted']}": "opted_out",
        f"c{ids['orphan']}": "no_owner",
    }
    async with db.sessions() as session:
        run = await session.get(CampaignRun, run_id)
        assert run is not None
        assert run.counts["included"] == 6 and run.fanned_out_at is not None


async def test_a_second_fanout_of_the_same_run_adds_nothing(
    db: Database, clock: ManualClock
) -> None:
    await seed(db, clock, vips=10)
    run_id = await start(db, clock, campaign(channel="staff_task"), batch_size=3)
    before = [(r.idempotency_key, r.id) for r in await outbox_rows(db)]
    async with db.sessions.begin() as session:  # as after a crash: cursor back to the start
        run = await session.get(CampaignRun, run_id)
        assert run is not None
        run.cursor, run.fanned_out_at, run.batches = None, None, 0
    await fanout(db, clock, batch_size=3).run(run_id)
    after = [(r.idempotency_key, r.id) for r in await outbox_rows(db)]
    assert after == before and len(after) == 10
    assert all(r.channel == STAFF_APP for r in await outbox_rows(db))
    async with db.sessions() as session:
        from sqlalchemy import func, select

        assert await session.scalar(select(func.count()).select_from(Task)) == 10


async def test_throttle_spreads_due_times(db: Database, clock: ManualClock) -> None:
    await seed(db, clock, vips=4)
    definition = campaign(channel="staff_task", throttle={"per_minute": 2})
    await start(db, clock, definition)
    dues = [r.due_at - clock.now() for r in await outbox_rows(db)]
    assert dues == [timedelta(seconds=30 * i) for i in range(4)]


async def test_pause_holds_resume_respreads_cancel_cancels(
    db: Database, clock: ManualClock
) -> None:
    await seed(db, clock, vips=4)
    await start(db, clock, campaign(channel="staff_task", throttle={"per_minute": 60}))
    async with db.sessions.begin() as session:
        _run, held = await control.pause(session, "vip", now=clock.now())
    assert held == 4
    assert {r.due_at for r in await outbox_rows(db)} == {control.HELD}
    with pytest.raises(control.CampaignStateError, match="is paused"):
        async with db.sessions.begin() as session:
            await control.pause(session, "vip", now=clock.now())
    clock.advance(timedelta(hours=1))
    async with db.sessions.begin() as session:
        _run, respread = await control.resume(session, "vip", now=clock.now(), zone=ZoneInfo(ZONE))
    assert respread == 4
    dues = [r.due_at - clock.now() for r in await outbox_rows(db)]
    assert dues == [timedelta(seconds=i) for i in range(4)]
    async with db.sessions.begin() as session:
        cancelled = await control.cancel(session, "vip", now=clock.now())
        assert cancelled.run.state is RunState.CANCELLED
    assert (cancelled.rows, cancelled.withdrawals) == (4, 0)
    assert {r.state for r in await outbox_rows(db)} == {OutboxState.CANCELLED}


async def test_start_is_refused_while_a_run_is_active(db: Database, clock: ManualClock) -> None:
    await seed(db, clock)
    await start(db, clock, campaign())
    with pytest.raises(control.CampaignStateError, match="run 1 is running"):
        async with db.sessions.begin() as session:
            await control.create_run(session, campaign(), now=clock.now(), zone_default=ZONE)


def test_variants_split_by_the_percentages_and_stay_put() -> None:
    definition = campaign(
        variants=[
            {"name": "a", "split": 30, "text": "A"},
            {"name": "b", "split": 70, "text": "B"},
        ]
    )
    counts = Counter(variant_of(definition, f"c{i}") for i in range(20_000))
    assert abs(counts["a"] / 20_000 - 0.30) < 0.015
    assert variant_of(definition, "c42") == variant_of(definition, "c42")
