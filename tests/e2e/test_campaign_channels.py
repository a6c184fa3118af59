"""Campaigns on every channel end to end, and the exclusions they share with playbooks.

The real runtime, the fake WeCom and Official Account APIs over real HTTP, a manual clock:
a weekly tip to customer groups (one ``add_msg_template`` per group owner, confirmed in the
owners' clients), a personalised Official Account message that only followers inside their
48-hour window get, a one-by-one follow-up that reaches customers when their owner marks the
task card done, and a second campaign the same day that the frequency cap and an opt-out
keep from the customers who already had enough.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sop.campaigns.model import Campaign
from sop.settings import FrequencyCap
from store.models import CampaignRecipient, CustomerGroup, MpFollower, Task, TaskState
from tests.support.e2e import STAFF, World
from tests.support.e2e_campaigns import confirm_all, report, start, tag_all, vips

VIP = {"tags": {"any": ["VIP"]}}


def campaign(name: str, **fields: Any) -> Campaign:
    base: dict[str, Any] = {
        "name": name,
        "channel": "mass",
        "audience": {"tags": {"any": ["VIP"]}},
    }
    return Campaign.model_validate(base | fields)


def mass_texts(world: World, marker: str) -> dict[str, list[list[str]]]:
    """sender -> the recipients (customers or groups) of each add_msg_template holding
    ``marker``."""
    found: dict[str, list[list[str]]] = {}
    for message in world.wecom.mass.messages.values():
        body = message.body
        if marker in str(body.get("text", {}).get("content", "")):
            targets = body.get("chat_id_list") or body.get("external_userid") or []
            found.setdefault(body["sender"], []).append(sorted(targets))
    return found


async def outcomes(world: World, name: str) -> dict[str, str | None]:
    """Each recipient's address -> outcome (excluded ones: ``excluded:<reason>``)."""
    result = await report(world, name)
    rows = await world.rows(CampaignRecipient, run_id=result.run.id)
    return {
        str(r.address or r.recipient): r.outcome
        if r.excluded is None
        else f"excluded:{r.excluded}"
        for r in rows
    }


async def test_a_weekly_tip_goes_to_each_owners_groups(world: World) -> None:
    groups = {"wrTips1": STAFF, "wrTips2": STAFF, "wrTea1": "lisi"}
    for chat_id, owner in groups.items():
        world.wecom.add_group(chat_id, f"群{chat_id}", owner=owner)
        await world.customer_adds(f"wmMember{chat_id}", staff=owner)
        await world.joins_group(chat_id, f"wmMember{chat_id}")  # our side learns the group
    await world.advance(by=timedelta(minutes=5))
    assert len(await world.rows(CustomerGroup)) == 3

    tip = campaign("weekly_tip", channel="group_mass", audience={}, content={"text": "本周小贴士"})
    await start(world, tip)
    await world.advance(by=timedelta(minutes=1))
    assert mass_texts(world, "本周小贴士") == {
        STAFF: [["wrTips1", "wrTips2"]],
        "lisi": [["wrTea1"]],
    }
    confirm_all(world)
    await world.advance(by=timedelta(hours=1))
    assert await outcomes(world, "weekly_tip") == {
        "wrTips1": "sent",
        "wrTips2": "sent",
        "wrTea1": "sent",
    }


async def test_an_official_account_message_reaches_followers_inside_their_window(
    world: World,
) -> None:
    for openid in ("oTalked", "oQuiet", "oLongAgo"):
        await world.follows_mp(openid)
    await world.says_on_mp("oLongAgo", "你好")
    await world.advance(by=timedelta(hours=50))  # oLongAgo's window closes
    await world.says_on_mp("oTalked", "有新品吗")
    await world.settle()
    followers = await world.rows(MpFollower)
    await tag_all(world, "VIP", [f.customer_id for f in followers])
    sent_before = len(world.mp.deliveries)

    news = campaign(
        "mp_news",
        channel="mp",
        account="news",
        content={"text": "新品到店，回复1了解详情"},
        goal={"reply": True, "within": "1d"},
    )
    await start(world, news)
    await world.advance(by=timedelta(minutes=1))
    delivered = world.mp.deliveries[sent_before:]
    assert [(d.openid, d.body["text"]["content"]) for d in delivered] == [
        ("oTalked", "新品到店，回复1了解详情")
    ]
    await world.says_on_mp("oTalked", "1")
    await world.settle()
    assert await outcomes(world, "mp_news") == {
        "oTalked": "sent",
        "oQuiet": "excluded:outside_48h_window",
        "oLongAgo": "excluded:outside_48h_window",
    }
    total = (await report(world, "mp_news")).total
    assert (total.reached, total.replied, total.converted) == (1, 1, 1)


async def test_a_one_by_one_follow_up_reaches_customers_as_staff_mark_it_done(
    world: World,
) -> None:
    await vips(world, {"wmOne1": STAFF, "wmOne2": STAFF, "wmOne3": "lisi"})
    follow_up = campaign(
        "vip_call",
        channel="staff_task",
        content={"text": "{{ customer.name }}您好，新品到店给您留了一份"},
        task={"title": "VIP 新品回访", "due": "1d"},
    )
    await start(world, follow_up)
    await world.advance(by=timedelta(minutes=1))
    cards = [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == "VIP 新品回访"]
    assert len(cards) == 2
    assert [c for c in world.cards_to("lisi") if c["main_title"]["title"] == "VIP 新品回访"]
    tasks = await world.rows(Task, staff_userid=STAFF, title="VIP 新品回访")
    assert all(t.script.endswith("您好，新品到店给您留了一份") for t in tasks)

    first = tasks[0]
    [card] = [c for c in cards if c["task_id"] == f"task-{first.id}"]
    await world.press(card, f"task:{first.id}:done")
    assert (await world.one(Task, id=first.id)).state is TaskState.DONE

    total = (await report(world, "vip_call")).total
    assert (total.recipients, total.reached) == (3, 1)


async def test_a_second_campaign_the_same_day_spares_the_capped_and_the_opted_out(
    world: World,
) -> None:
    await vips(world, {"wmCap1": STAFF, "wmCap2": STAFF, "wmCap3": STAFF})
    once_a_day = world.runtime.config.sop.model_copy(
        update={"frequency_cap": FrequencyCap(messages=1, per=timedelta(days=1))}
    )
    await start(world, campaign("launch", content={"text": "新品首发"}), settings=once_a_day)
    await world.advance(by=timedelta(minutes=1))
    await world.says_to_bot("wmCap3", "退订")
    await vips(world, {"wmLate": STAFF})  # tagged VIP after the launch went out
    await world.advance(by=timedelta(hours=2))

    await start(world, campaign("flash", content={"text": "限时闪购"}), settings=once_a_day)
    await world.advance(by=timedelta(minutes=1))
    assert mass_texts(world, "限时闪购") == {STAFF: [["wmLate"]]}
    assert await outcomes(world, "flash") == {
        "wmCap1": "excluded:capped",
        "wmCap2": "excluded:capped",
        "wmCap3": "excluded:opted_out",
        "wmLate": "pending",  # accepted; the staff member has not sent it yet
    }

    await world.advance(by=timedelta(days=1))  # the window slides past the launch
    await start(world, campaign("next_day", content={"text": "次日特惠"}), settings=once_a_day)
    await world.advance(by=timedelta(minutes=1))
    assert mass_texts(world, "次日特惠") == {STAFF: [["wmCap1", "wmCap2", "wmLate"]]}
