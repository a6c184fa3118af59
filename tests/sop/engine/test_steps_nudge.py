"""``nudge``: a task and a button card; with ``wait`` the task's end or its timeout decides."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from sop.delivery.messages import STAFF_APP
from sop.engine.steps.nudge import task_finished
from store.models import AgendaKind, Task, TaskState, Waiting
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database

WAITING_NUDGE = {
    "id": "call",
    "nudge": {
        "title": "Call back",
        "script": {"text": "Ask {{ customer.name }} how it went"},
        "due": "2h",
        "escalate_after": "1h",
        "wait": True,
        "on_done": "won",
        "on_skipped": "lost",
        "on_expired": "late",
    },
}
BRANCHES = [
    {"id": "won", "stop": True},
    {"id": "lost", "stop": True},
    {"id": "late", "stop": True},
]


async def test_a_nudge_creates_a_task_and_a_card_and_goes_on(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook(
        "n",
        steps=[
            {"nudge": {"staff": "carol", "script": {"text": "Hi {{ customer.name }}"}}},
            {"tag": "x"},
        ],
    )
    enrollment = await h.enroll("n", await h.customer(name="Ann"))
    await h.run()
    (task,) = await h.tasks()
    assert (task.staff_userid, task.script, task.key) == (
        "carol",
        "Hi Ann",
        f"enrollment:{enrollment}:seq:1",
    )
    assert task.due_at == clock.now() + timedelta(hours=4)
    card = (await h.outbox())[0]
    assert (card.channel, card.recipient, card.idempotency_key) == (
        STAFF_APP,
        "carol",
        f"task:{task.id}:card",
    )
    body = card.payload["template_card"]
    assert body["task_id"] == f"task-{task.id}"
    assert [b["key"] for b in body["button_list"]] == [
        f"task:{task.id}:done",
        f"task:{task.id}:snooze",
        f"task:{task.id}:skip",
    ]
    assert await h.outcomes(enrollment) == [("1", "done"), ("2", "done")]


async def test_a_waiting_nudge_expires_at_due_plus_escalation(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook("n", steps=[WAITING_NUDGE, *BRANCHES])
    enrollment = await h.enroll("n", await h.customer())
    await h.run()
    assert (await h.enrollment(enrollment)).waiting == Waiting.TASK
    timeout = (await h.agenda(enrollment))[-1]
    assert (timeout.kind, timeout.due_at) == (
        AgendaKind.TASK_TIMEOUT,
        clock.now() + timedelta(hours=3),
    )
    clock.advance(timedelta(hours=3))
    await h.run()
    assert await h.outcomes(enrollment) == [
        ("call", "waiting"),
        ("call", "expired"),
        ("late", "stopped"),
    ]
    assert (await h.tasks())[0].state == TaskState.EXPIRED


async def test_task_finished_resumes_on_done_or_skipped(db: Database, clock: ManualClock) -> None:
    h = Harness(db, clock)
    await h.playbook("n", steps=[WAITING_NUDGE, *BRANCHES])
    done = await h.enroll("n", await h.customer("wm1"))
    skipped = await h.enroll("n", await h.customer("wm2"))
    await h.run()
    clock.advance(timedelta(minutes=10))
    async with db.sessions.begin() as session:
        tasks = (await session.scalars(select(Task).order_by(Task.id))).all()
        assert await task_finished(session, tasks[0], "done", now=clock.now())
        assert await task_finished(session, tasks[1], "skipped", now=clock.now())
    await h.run()
    assert (await h.outcomes(done))[-2:] == [("call", "task_done"), ("won", "stopped")]
    assert (await h.outcomes(skipped))[-2:] == [("call", "task_skipped"), ("lost", "stopped")]
    async with db.sessions.begin() as session:  # nobody waits any more
        task = (await session.scalars(select(Task).order_by(Task.id))).first()
        assert task is not None
        assert not await task_finished(session, task, "done", now=clock.now())
