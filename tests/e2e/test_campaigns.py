"""Mass campaigns end to end: the real runtime, the fake WeCom over real HTTP, a manual clock.

A VIP campaign is started; the sender calls ``add_msg_template`` once per owner (and
variant) with all their recipients; the owners confirm in their client (the fake); the
collector reads each recipient's fate; ``collect`` and the report show sent and
limit_reached, and a reply within the window. A pause holds the sends until resumed.
"""

from __future__ import annotations

import csv
import subprocess
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from sop.campaigns import control
from sop.campaigns.eligibility import variant_of
from sop.campaigns.fanout import Fanout
from sop.campaigns.model import Campaign
from sop.campaigns.report import RunReport, find_run, run_report
from sop.campaigns.results import collect
from sop.rendering.renderer import Renderer
from store.models import CampaignRecipient, Customer
from tests.support.cli import run_scrm
from tests.support.e2e import REPO, STAFF, ZONE, World
from tests.support.engine_factories import add_tag, tag_customer

VIP = {"tags": {"any": ["VIP"]}}


def definition(**fields: Any) -> Campaign:
    base: dict[str, Any] = {
        "name": "vip_e2e",
        "channel": "mass",
        "audience": VIP,
        "frequency_cap": False,
        "goal": {"reply": True, "within": "3d"},
    }
    if "variants" not in fields:
        base["content"] = {"text": "新品首发，回复1预约"}
    return Campaign.model_validate(base | fields)


async def vips(world: World, people: dict[str, str]) -> None:
    """Customers (external userid -> owning staff) added through WeCom, then tagged VIP."""
    for external_userid, staff in people.items():
        await world.customer_adds(external_userid, staff=staff)
    await world.settle()
    async with world.runtime.sessions.begin() as session:
        tag = await add_tag(session, "VIP", now=world.now)
        customers = await session.scalars(
            select(Customer).where(Customer.external_userid.in_(list(people)))
        )
        for customer in customers:
            await tag_customer(session, customer.id, tag, now=world.now)


async def start(world: World, campaign: Campaign) -> int:
    async with world.runtime.sessions.begin() as session:
        run = await control.create_run(session, campaign, now=world.now, zone_default=ZONE)
        run_id = run.id
    sop = world.runtime.config.sop
    renderer = Renderer(REPO / "templates")
    await Fanout(world.runtime.sessions, renderer, sop, world.clock, ZONE).run(run_id)
    return run_id


def mass_calls(world: World, marker: str) -> dict[str, list[tuple[str, list[str]]]]:
    """The fake's add_msg_template calls whose text holds ``marker``: sender -> (text, ids)."""
    calls: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for message in world.wecom.mass.messages.values():
        text = str(message.body.get("text", {}).get("content", ""))
        if marker in text:
            calls[message.body["sender"]].append((text, sorted(message.body["external_userid"])))
    return dict(calls)


def confirm_all(world: World) -> None:
    for message in world.wecom.mass.messages.values():
        for userid, task in message.tasks.items():
            if task.status == 0:
                world.wecom.confirm_mass(message.msgid, userid)


def scrm(*args: str, world: World) -> subprocess.CompletedProcess[str]:
    """The ``scrm`` command in its own process, on the world's database."""
    return run_scrm(*args, env={"SCRM_DATABASE_URL": world.runtime.config.database_url})


async def report(world: World) -> RunReport:
    async with world.runtime.sessions.begin() as session:
        run = await find_run(session, "vip_e2e")
        await collect(session, run.id, now=world.now)
    async with world.runtime.sessions() as session:
        return await run_report(session, run)


async def test_a_vip_mass_campaign_is_sent_per_owner_confirmed_and_reported(
    world: World, tmp_path: Path
) -> None:
    owners = {"wmVip1": STAFF, "wmVip2": STAFF, "wmVip3": STAFF, "wmVip4": "lisi"}
    await vips(world, owners)
    world.wecom.mass.received["wmVip3"].append(world.now)  # already had today's share

    await start(world, definition())
    await world.advance(by=timedelta(minutes=1))
    assert mass_calls(world, "新品首发") == {
        STAFF: [("新品首发，回复1预约", ["wmVip1", "wmVip2", "wmVip3"])],
        "lisi": [("新品首发，回复1预约", ["wmVip4"])],
    }
    confirm_all(world)
    await world.advance(by=timedelta(hours=1))  # the collector reads the results
    await world.says_to_bot("wmVip1", "1")
    await world.settle()

    result = await report(world)
    total = result.total
    assert total.outcomes == {"sent": 3, "limit_reached": 1}
    assert (total.recipients, total.sent, total.reached, total.replied) == (4, 3, 3, 1)
    assert total.converted == 1  # the goal is a reply
    async with world.runtime.sessions() as session:
        rows = (await session.scalars(select(CampaignRecipient))).all()
    assert {r.address: r.outcome for r in rows} == {
        "wmVip1": "sent",
        "wmVip2": "sent",
        "wmVip3": "limit_reached",
        "wmVip4": "sent",
    }

    # What an operator runs: the table per variant and a CSV line per recipient.
    target = tmp_path / "vip.csv"
    done = scrm("campaign", "report", "vip_e2e", "--csv", str(target), world=world)
    assert done.returncode == 0, done.stderr
    assert "limit_reached 1, sent 3" in done.stdout and "33.3%" in done.stdout
    lines = list(csv.DictReader(target.read_text(encoding="utf-8").splitlines()))
    assert sorted((line["address"], line["outcome"]) for line in lines) == [
        ("wmVip1", "sent"),
        ("wmVip2", "sent"),
        ("wmVip3", "limit_reached"),
        ("wmVip4", "sent"),
    ]


async def test_each_variant_gets_its_own_add_msg_template(world: World) -> None:
    people = {f"wmAb{i}": STAFF for i in range(8)}
    await vips(world, people)
    campaign = definition(
        variants=[
            {"name": "a", "split": 50, "text": "甲版：新品首发"},
            {"name": "b", "split": 50, "text": "乙版：新品首发"},
        ]
    )
    expected: dict[str, list[str]] = defaultdict(list)
    async with world.runtime.sessions() as session:
        for customer in await session.scalars(
            select(Customer).where(Customer.external_userid.in_(list(people)))
        ):
            variant = variant_of(campaign, f"c{customer.id}")
            expected[variant].append(customer.external_userid or "")
    assert set(expected) == {"a", "b"}, expected

    await start(world, campaign)
    await world.advance(by=timedelta(minutes=1))
    calls = mass_calls(world, "新品首发")[STAFF]
    assert sorted(calls) == [
        ("乙版：新品首发", sorted(expected["b"])),
        ("甲版：新品首发", sorted(expected["a"])),
    ]
    confirm_all(world)
    await world.advance(by=timedelta(hours=1))
    result = await report(world)
    assert {name: v.sent for name, v in result.variants.items()} == {
        name: len(ids) for name, ids in expected.items()
    }


async def test_a_pause_holds_the_sends_until_resumed(world: World) -> None:
    await vips(world, {"wmP1": STAFF, "wmP2": "lisi"})
    await start(world, definition(throttle={"per_minute": 1}))
    async with world.runtime.sessions.begin() as session:
        _, held = await control.pause(session, "vip_e2e", now=world.now)
    assert held == 2
    await world.advance(by=timedelta(hours=2))
    assert mass_calls(world, "新品首发") == {}

    async with world.runtime.sessions.begin() as session:
        await control.resume(session, "vip_e2e", now=world.now, zone=ZoneInfo(ZONE))
    await world.advance(by=timedelta(minutes=5))
    calls = mass_calls(world, "新品首发")
    assert {sender: ids for sender, [(_, ids)] in calls.items()} == {
        STAFF: ["wmP1"],
        "lisi": ["wmP2"],
    }
