"""Staff tasks end to end, on both databases and the manual clock: a playbook nudge becomes a
card on the fake WeCom; a signed, encrypted button press marks it done, the card is updated
and the playbook moves on; a typed ``done 42`` does the same; an ignored task reminds and then
escalates to the department leader; the daily digest lists the right work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.callback import samples
from bot.callback.routes import add_callback_routes
from bot.server import open_runtime
from sop.tasks.service import TaskSystem
from store.models import Enrollment, EnrollmentState, Task, TaskState
from tests.e2e.conftest import local
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.e2e import APP, STAFF, World, e2e_config, seed_corp
from tests.support.fake_mp import running_fake_mp
from tests.support.fake_wecom import running_fake_wecom

CUSTOMER = "wmVipCustomer0000000000000001"
TITLE = "VIP 回访"
PLAYBOOK = """
name: vip_callback
description: 新客户回访，等回访完成再打标签
marketing: false
trigger:
  event: customer_added
steps:
  - id: call
    nudge:
      title: VIP 回访
      script: {text: "给 {{ customer.name }} 打个电话，问问使用情况"}
      due: 2h
      escalate_after: 1h
      wait: true
      on_done: called
      on_skipped: dropped
      on_expired: dropped
  - id: called
    tag: 已回访
  - stop: true
  - id: dropped
    stop: true
"""


@asynccontextmanager
async def tasks_world(db: Database, clock: ManualClock, folder: Path) -> AsyncIterator[World]:
    """The e2e world (tests.support.e2e) with one more playbook folder: a waiting nudge."""
    (folder / "vip_callback.yaml").write_text(PLAYBOOK, encoding="utf-8")
    async with running_fake_wecom(clock=clock) as wecom, running_fake_mp(clock=clock) as mp:
        seed_corp(wecom)
        wecom.add_department(1, "销售部", leaders=["lisi"])
        config = e2e_config(db.url, wecom, mp)
        sop = config.sop.model_copy(update={"playbooks": [str(folder)]})
        config = config.model_copy(update={"sop": sop})
        async with open_runtime(config, clock=clock) as runtime:
            app = web.Application(client_max_size=config.server.max_body_bytes)
            add_callback_routes(app, config, runtime.writer)
            await runtime.writer.start()
            try:
                async with TestClient(TestServer(app)) as client:
                    yield World(runtime, client, wecom, mp, clock)
            finally:
                await runtime.writer.stop()


@pytest.fixture
async def world(db: Database, clock: ManualClock, tmp_path: Path) -> AsyncIterator[World]:
    async with tasks_world(db, clock, tmp_path) as running:
        yield running


def tasks_of(world: World) -> TaskSystem:
    assert world.runtime.tasks is not None
    return world.runtime.tasks


async def follow_up(world: World) -> None:
    """What the scheduler's follow-ups tick does, then everything it caused."""
    await tasks_of(world).followups.run_once()
    await world.settle()


async def staff_says(world: World, text: str, msg_id: int) -> None:
    at = int(world.now.timestamp())
    plaintext = samples.staff_text_xml(
        corp_id=world.wecom.corp_id,
        user_id=STAFF,
        agent_id=APP.agent_id or 0,
        content=text,
        msg_id=msg_id,
        create_time=at,
    )
    status, _ = await world.post(
        samples.sign_wecom(APP, world.wecom.corp_id, plaintext, timestamp=at, nonce=f"s{msg_id}")
    )
    assert status == 200
    await world.settle()


async def nudged(world: World) -> tuple[Task, dict[str, object]]:
    await world.customer_adds(CUSTOMER, state="website", name="周女士")
    await world.advance(by=timedelta(minutes=1))
    [card] = [c for c in world.cards_to(STAFF) if c["main_title"]["title"] == TITLE]
    task = await world.one(Task, title=TITLE)
    return task, card


async def test_a_press_on_the_card_marks_it_done_and_the_playbook_moves_on(world: World) -> None:
    task, card = await nudged(world)
    assert "周女士" in card["main_title"]["desc"]  # type: ignore[index]
    assert (await world.one(Enrollment, playbook="vip_callback")).waiting.value == "task"

    code = await world.press(card, f"task:{task.id}:done")

    done = await world.one(Task, id=task.id)
    assert done.state is TaskState.DONE and done.history[-1]["by"] == STAFF
    [update] = world.deliveries("message/update_template_card", STAFF)
    assert update.body["response_code"] == code
    assert update.body["template_card"]["replace_text"] == "✅ Done"
    enrollment = await world.one(Enrollment, playbook="vip_callback")
    assert enrollment.state is EnrollmentState.COMPLETED
    follow = world.wecom.customers[CUSTOMER].follows[STAFF]
    assert world.wecom.tag_named("已回访").id in follow.tag_ids


async def test_typing_done_does_the_same(world: World) -> None:
    task, _card = await nudged(world)
    await staff_says(world, f"done {task.id}", msg_id=9001)

    assert (await world.one(Task, id=task.id)).state is TaskState.DONE
    replies = [
        d.body["text"]["content"]
        for d in world.deliveries("message/send", STAFF)
        if d.msgtype == "text"
    ]
    assert replies == [f"Task {task.id} ({TITLE}): ✅ Done."]
    [update] = world.deliveries("message/update_template_card", STAFF)
    assert update.body["template_card"]["replace_text"] == "✅ Done"
    enrollment = await world.one(Enrollment, playbook="vip_callback")
    assert enrollment.state is EnrollmentState.COMPLETED


async def test_an_ignored_task_reminds_then_escalates_to_the_leader(world: World) -> None:
    task, _card = await nudged(world)  # due 19:00, escalation 20:00 (the clock starts at 17:00)
    await world.advance(to=local(23, 19, 20))
    await follow_up(world)
    [reminder] = [d for d in world.deliveries("message/send", STAFF) if d.msgtype == "text"]
    assert f"#{task.id} {TITLE} (周女士)" in reminder.body["text"]["content"]
    assert world.deliveries("message/send", "lisi") == []

    await world.advance(to=local(23, 20, 5))
    await follow_up(world)
    [escalation] = world.deliveries("message/send", "lisi")
    assert escalation.body["text"]["content"].startswith("⚠️ 张三 (zhangsan) has 1 late task(s)")
    assert f"#{task.id} {TITLE}" in escalation.body["text"]["content"]
    # The nudge waited until its escalation time: the playbook took on_expired.
    enrollment = await world.one(Enrollment, playbook="vip_callback")
    assert enrollment.state is EnrollmentState.COMPLETED
    assert (await world.one(Task, id=task.id)).state is TaskState.EXPIRED


async def test_the_daily_digest_lists_the_right_work(world: World) -> None:
    task, _card = await nudged(world)  # due today 19:00
    await world.says_to_bot(CUSTOMER, "请问什么时候发货？")
    await world.advance(to=local(23, 18, 0))
    await tasks_of(world).daily.run()  # what the daily cron job runs
    await world.advance(by=timedelta(minutes=2))  # staff messages keep clear of :00 and :30
    [digest] = [
        d.body["text"]["content"]
        for d in world.deliveries("message/send", STAFF)
        if d.msgtype == "text" and d.body["text"]["content"].startswith("📋")
    ]
    lines = digest.splitlines()
    assert lines[0] == "📋 Your day, 2026-11-23"
    assert "Due today (1)" in lines and f"• #{task.id} {TITLE} (周女士), due 11-23 19:00" in lines
    assert "Overdue (1)" not in lines
    assert "New customers since yesterday (1)" in lines and "• 周女士" in lines
    assert not any(line.startswith("Waiting") for line in lines), "asked an hour ago"
    assert world.deliveries("message/send", "lisi") == [], "lisi has no open work"
    await tasks_of(world).daily.run()  # a second fire the same day adds nothing
    await world.advance(by=timedelta(minutes=2))
    assert sum(1 for d in world.deliveries("message/send", STAFF) if "📋" in str(d.body)) == 1
