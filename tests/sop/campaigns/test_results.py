"""Results: outcomes from the outbox and mass recipients, replies and goals in the window,
per variant; on both backends with a manual clock (the platform's side written as the mass
collector writes it; the HTTP round trip is in tests/e2e/test_campaigns.py)."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from sop.campaigns import control
from sop.campaigns.model import Campaign
from sop.campaigns.report import CSV_COLUMNS, find_run, recipient_lines, run_report
from sop.campaigns.results import collect
from store.models import (
    CampaignRecipient,
    Direction,
    Interaction,
    MassJob,
    MassRecipient,
    MassStatus,
    OutboxRow,
    OutboxState,
    Task,
    TaskState,
)
from tests.sop.campaigns.world import campaign, fanout, recipients, seed
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.engine_factories import add_tag, tag_customer

FATES = {
    "wm000": MassStatus.SENT,
    "wm001": MassStatus.SENT,
    "wm002": MassStatus.LIMIT_REACHED,
    "wm003": MassStatus.NOT_A_CONTACT,
    "wm004": MassStatus.PENDING,
    "wm005": MassStatus.SENT,
}


async def start(db: Database, clock: ManualClock, definition: Campaign) -> int:
    async with db.sessions.begin() as session:
        run = await control.create_run(session, definition, now=clock.now(), zone_default="UTC")
        run_id = run.id
    await fanout(db, clock).run(run_id)
    return run_id


async def platform_settles(db: Database, clock: ManualClock, fates: dict[str, MassStatus]) -> None:
    """WeCom accepted every mass row; each recipient's fate as the collector records it."""
    now = clock.now()
    async with db.sessions.begin() as session:
        for row in (await session.scalars(select(OutboxRow))).all():
            row.state, row.sent_at = OutboxState.SENT, now
            job = MassJob(
                outbox_id=row.id,
                msgid=f"msg{row.id}",
                sender=row.recipient,
                chat_type="single",
                accepted_at=now,
                next_poll_at=now,
                updated_at=now,
            )
            session.add(job)
            await session.flush()
            for address in row.payload["external_userid"]:
                status = fates[address]
                session.add(
                    MassRecipient(
                        job_id=job.id,
                        outbox_id=row.id,
                        msgid=job.msgid,
                        sender=row.recipient,
                        recipient=address,
                        status=status,
                        send_time=now if status == MassStatus.SENT else None,
                        created_at=now,
                        updated_at=now,
                    )
                )


async def says(db: Database, customer_id: int, clock: ManualClock, kind: str = "message") -> None:
    async with db.sessions.begin() as session:
        session.add(
            Interaction(
                customer_id=customer_id,
                direction=Direction.INBOUND if kind == "message" else Direction.EVENT,
                kind=kind,
                summary="1",
                source="test",
                occurred_at=clock.now(),
                recorded_at=clock.now(),
            )
        )


async def collected(db: Database, run_id: int, clock: ManualClock) -> int:
    async with db.sessions.begin() as session:
        return await collect(session, run_id, now=clock.now())


async def by_address(db: Database) -> dict[str, CampaignRecipient]:
    return {r.address or r.recipient: r for r in await recipients(db)}


async def test_mass_outcomes_replies_in_the_window_and_idempotence(
    db: Database, clock: ManualClock
) -> None:
    ids = await seed(db, clock)
    definition = campaign(goal={"reply": True, "within": "3d"})
    run_id = await start(db, clock, definition)
    assert await collected(db, run_id, clock) == 6  # before WeCom: every row pending
    assert {r.outcome for r in (await by_address(db)).values() if not r.excluded} == {"pending"}
    clock.advance(timedelta(minutes=5))
    await platform_settles(db, clock, FATES)
    sent_at = clock.now()
    await says(db, ids["wm001"], clock)  # before being reached: no reply
    clock.advance(timedelta(hours=1))
    await says(db, ids["wm000"], clock)
    await says(db, ids["wm000"], clock)  # the first reply counts
    clock.advance(timedelta(days=4))
    await says(db, ids["wm005"], clock)  # after the window
    assert await collected(db, run_id, clock) == 5  # wm004 is still pending
    assert await collected(db, run_id, clock) == 0  # idempotent
    people = await by_address(db)
    outcome = {a: r.outcome for a, r in people.items() if not r.excluded}
    assert outcome == {a: s.value for a, s in FATES.items()}
    assert people["wm000"].reached_at == sent_at
    assert people["wm000"].replied_at == sent_at + timedelta(hours=1)
    assert people["wm000"].converted_at == people["wm000"].replied_at
    assert people["wm001"].replied_at is None  # spoke before the send
    assert people["wm005"].replied_at is None  # after the window
    assert people["wm002"].reached_at is None  # limit reached: never reached

    async with db.sessions() as session:
        report = await run_report(session, await find_run(session, "vip"))
    total = report.total
    assert (total.recipients, total.included, total.sent, total.reached) == (8, 6, 3, 3)
    assert total.excluded == {"opted_out": 1, "no_owner": 1}
    assert total.outcomes == {"sent": 3, "limit_reached": 1, "not_a_contact": 1, "pending": 1}
    assert (total.replied, total.converted, total.reply_rate) == (1, 1, 1 / 3)


async def test_ab_variants_are_reported_each_and_a_tag_goal_counts(
    db: Database, clock: ManualClock, tmp_path: Path
) -> None:
    ids = await seed(db, clock)
    definition = campaign(
        variants=[
            {"name": "a", "split": 50, "text": "A {{ owner.name }}"},
            {"name": "b", "split": 50, "text": "B {{ owner.name }}"},
        ],
        goal={"tag": "买家", "within": "2d"},
    )
    run_id = await start(db, clock, definition)
    await platform_settles(db, clock, dict.fromkeys(FATES, MassStatus.SENT))
    clock.advance(timedelta(hours=2))
    async with db.sessions.begin() as session:
        buyer = await add_tag(session, "买家", now=clock.now())
        await tag_customer(session, ids["wm000"], buyer, now=clock.now())
    await collected(db, run_id, clock)
    people = await by_address(db)
    variants: dict[str, Any] = {}
    for person in people.values():
        if not person.excluded:
            variants.setdefault(person.variant, []).append(person.address)
    async with db.sessions() as session:
        report = await run_report(session, await find_run(session, "vip", 1))
        lines = [line async for line in recipient_lines(session, run_id, chunk=3)]
    assert set(report.variants) == set(variants) == {"a", "b"}
    for name, addresses in variants.items():
        assert report.variants[name].sent == len(addresses)
        converted = report.variants[name].converted
        assert converted == (1 if "wm000" in addresses else 0)
    assert people["wm000"].converted_at == clock.now() and people["wm000"].replied_at is None
    assert len(lines) == 8 and list(lines[0]) == list(CSV_COLUMNS)
    target = tmp_path / "out.csv"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(lines)
    assert "limit_reached" not in target.read_text() and "wm000" in target.read_text()


async def test_staff_task_reached_when_the_task_is_done(db: Database, clock: ManualClock) -> None:
    ids = await seed(db, clock, vips=2)
    run_id = await start(db, clock, campaign(channel="staff_task", content={"text": "hi"}))
    async with db.sessions.begin() as session:
        await session.execute(
            update(OutboxRow).values(state=OutboxState.SENT, sent_at=clock.now())
        )
        task = await session.scalar(select(Task).where(Task.customer_id == ids["wm000"]))
        assert task is not None
        task.state, task.closed_at = TaskState.DONE, clock.now() + timedelta(hours=1)
    await collected(db, run_id, clock)
    people = {r.customer_id: r for r in await recipients(db)}
    assert people[ids["wm000"]].outcome == people[ids["wm001"]].outcome == "sent"
    assert people[ids["wm000"]].reached_at == clock.now() + timedelta(hours=1)
    assert people[ids["wm001"]].reached_at is None
