"""Mass campaigns end to end: the real runtime, the fake WeCom over real HTTP, a manual clock.

A VIP campaign is started; the sender calls ``add_msg_template`` once per owner (and
variant) with all their recipients; the owners confirm in their client (the fake); the
collector reads each recipient's fate; ``collect`` and the report show sent and
limit_reached, and a reply within the window. A pause holds the sends until resumed; a
cancel withdraws the accepted messages the owners have not sent yet.
"""

from __future__ import annotations

import csv
import subprocess
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from sop.campaigns import control
from sop.campaigns.eligibility import variant_of
from sop.campaigns.model import Campaign
from store.models import CampaignRecipient, Customer
from tests.support.cli import run_scrm
from tests.support.e2e import STAFF, ZONE, World
from tests.support.e2e_campaigns import confirm_all, report, start, vips

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


def mass_calls(world: World, marker: str) -> dict[str, list[tuple[str, list[str]]]]:
    """The fake's add_msg_template calls whose text holds ``marker``: sender -> (text, ids)."""
    calls: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    for message in world.wecom.mass.messages.values():
        text = str(message.body.get("text", {}).get("content", ""))
        if marker in text:
            calls[message.body["sender"]].append((text, sorted(message.body["external_userid"])))
    return dict(calls)


def scrm(*args: str, world: World) -> subprocess.CompletedProcess[str]:
    """The ``scrm`` command in its own process, on the world's database."""
    return run_scrm(*args, env={"SCRM_DATABASE_URL": world.runtime.config.database_url})


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

    result = await report(world, "vip_e2e")
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
    result = await report(world, "vip_e2e")
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


async def test_a_cancel_withdraws_the_accepted_messages_nobody_sent_yet(world: World) -> None:
    await vips(world, {"wmC1": STAFF, "wmC2": "lisi"})
    await start(world, definition())
    await world.advance(by=timedelta(minutes=1))
    by_sender = {m.body["sender"]: m for m in world.wecom.mass.messages.values()}
    assert set(by_sender) == {STAFF, "lisi"}
    world.wecom.confirm_mass(by_sender[STAFF].msgid, STAFF)  # lisi has not sent hers

    async with world.runtime.sessions.begin() as session:
        cancelled = await control.cancel(session, "vip_e2e", now=world.now)
    assert (cancelled.rows, cancelled.withdrawals) == (0, 2)
    await world.advance(by=timedelta(minutes=1))  # the collector withdraws lisi's task

    assert by_sender["lisi"].cancelled_at is not None
    assert by_sender[STAFF].cancelled_at is None
    with pytest.raises(ValueError, match="no mass message"):
        world.wecom.confirm_mass(by_sender["lisi"].msgid, "lisi")
    assert (await report(world, "vip_e2e")).total.outcomes == {"sent": 1, "withdrawn": 1}
    done = scrm("campaign", "report", "vip_e2e", world=world)
    assert done.returncode == 0, done.stderr
    assert "sent 1, withdrawn 1" in done.stdout


async def test_scrm_campaign_cancel_says_what_it_cancelled_and_will_withdraw(
    world: World,
) -> None:
    await vips(world, {"wmC1": STAFF, "wmC2": "lisi"})
    await start(world, definition(throttle={"per_minute": 1}))
    await world.advance(by=timedelta(seconds=30))  # one owner's message accepted, one pending

    done = scrm("campaign", "cancel", "vip_e2e", world=world)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "run 1 cancelled: 1 pending rows cancelled,"
        " 1 accepted mass messages to withdraw (cancel_groupmsg_send)"
    )
