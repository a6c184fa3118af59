"""Typed commands: parsing (English and Chinese) and their effect, answered by an app text."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sop.events import MessageReceived
from sop.tasks.commands import Command, CommandError, StaffCommands, parse
from store.models import TaskState
from tests.sop.tasks.world import SETTINGS, STAFF, ZONE, customer, get, queued, task, texts
from tests.support.clock import ManualClock
from tests.support.database import Database


@pytest.mark.parametrize(
    ("message", "command"),
    [
        ("done 42", Command("done", 42)),
        ("完成 #42", Command("done", 42)),
        ("snooze 42 2h", Command("snooze", 42, snooze=timedelta(hours=2))),
        ("稍后 42 2小时", Command("snooze", 42, snooze=timedelta(hours=2))),
        ("snooze 42", Command("snooze", 42)),
        ("skip 7", Command("skip", 7)),
        ("转交 7 lisi", Command("reassign", 7, to="lisi")),
        ("  Tasks ", Command("tasks")),
        ("任务", Command("tasks")),
        ("hello there", None),
        ("", None),
    ],
)
def test_parse(message: str, command: Command | None) -> None:
    assert parse(message) == command


@pytest.mark.parametrize("message", ["done", "done forty", "snooze 42 soon", "reassign 42"])
def test_a_command_with_bad_arguments_says_how(message: str) -> None:
    with pytest.raises(CommandError, match="e.g.|30m, 2h"):
        parse(message)


def said(
    text: str, *, by: str = STAFF, inbox_id: int = 1, source: str = "wecom:sales"
) -> MessageReceived:
    from datetime import UTC, datetime

    return MessageReceived(
        occurred_at=datetime(2026, 11, 23, 9, tzinfo=UTC),
        source=source,
        inbox_id=inbox_id,
        msg_type="text",
        text=text,
        staff_userid=by,
    )


async def answer(db: Database, clock: ManualClock, event: MessageReceived) -> None:
    async with db.sessions.begin() as session:
        await StaffCommands(SETTINGS, clock, ZONE)(session, event)


async def test_done_from_the_chat_closes_the_task_and_updates_its_card(
    db: Database, clock: ManualClock
) -> None:
    task_id = await task(db, clock)
    await answer(db, clock, said(f"done {task_id}"))
    assert (await get(db, task_id)).state is TaskState.DONE
    [reply] = texts(await queued(db, prefix="tasks:reply:"))
    assert reply.startswith(f"Task {task_id} (回访): ✅ Done")
    # The card was never sent (no response code yet): there is nothing to update it with.
    assert await queued(db, channel="wecom_card_update") == []


async def test_someone_elses_task_is_refused(db: Database, clock: ManualClock) -> None:
    task_id = await task(db, clock, owner="wangwu")
    await answer(db, clock, said(f"done {task_id}"))
    assert (await get(db, task_id)).state is TaskState.OPEN
    [reply] = texts(await queued(db, prefix="tasks:reply:"))
    assert "not one of yours" in reply


async def test_tasks_lists_open_ones_with_whom_they_are_about(
    db: Database, clock: ManualClock
) -> None:
    alice = await customer(db, clock, "Alice")
    first = await task(db, clock, "回访", customer_id=alice)
    second = await task(db, clock, "报价", due_in=timedelta(hours=3))
    done = await task(db, clock, "已完成")
    await answer(db, clock, said(f"done {done}", inbox_id=1))
    await answer(db, clock, said("tasks", inbox_id=2))
    replies = texts(await queued(db, prefix="tasks:reply:"))
    assert replies[1].splitlines()[:3] == [
        "Your open tasks (2):",
        f"#{first} 回访 (Alice), due 11-23 18:00",
        f"#{second} 报价, due 11-23 20:00",
    ]


async def test_snooze_and_chatter_and_other_sources(db: Database, clock: ManualClock) -> None:
    task_id = await task(db, clock)
    await answer(db, clock, said("good morning", inbox_id=1))
    await answer(db, clock, said(f"done {task_id}", inbox_id=2, source="aibot:helper"))
    assert await queued(db, prefix="tasks:reply:") == []
    await answer(db, clock, said(f"snooze {task_id} 3h", inbox_id=3))
    snoozed = await get(db, task_id)
    assert snoozed.state is TaskState.SNOOZED
    assert snoozed.snoozed_until == clock.now() + timedelta(hours=3)
    [reply] = texts(await queued(db, prefix="tasks:reply:"))
    assert reply.endswith("Snoozed until 11-23 20:00.")
    await answer(db, clock, said(f"snooze {task_id} 3h", inbox_id=3))  # the same callback again
    assert len(await queued(db, prefix="tasks:reply:")) == 1
