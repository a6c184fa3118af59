"""Task transitions: history, the rules on closed tasks, and the waiting playbook woken."""

from __future__ import annotations

from datetime import timedelta

from sop.tasks import state
from store.models import TaskState
from tests.sop.engine.harness import Harness
from tests.sop.engine.test_steps_nudge import BRANCHES, WAITING_NUDGE
from tests.sop.tasks.world import get, task
from tests.support.clock import ManualClock
from tests.support.database import Database


async def test_done_closes_the_task_with_who_and_when(db: Database, clock: ManualClock) -> None:
    task_id = await task(db, clock)
    clock.advance(timedelta(minutes=5))
    async with db.sessions.begin() as session:
        found = await state.task_for_update(session, task_id)
        assert found is not None
        change = await state.done(session, found, by="zhangsan", now=clock.now())
    assert change.changed and change.before is TaskState.OPEN and not change.woke
    done = await get(db, task_id)
    assert done.state is TaskState.DONE and done.closed_at == clock.now()
    assert done.history[-1] == {"at": clock.now().isoformat(), "state": "done", "by": "zhangsan"}


async def test_a_closed_task_does_not_change(db: Database, clock: ManualClock) -> None:
    task_id = await task(db, clock)
    async with db.sessions.begin() as session:
        found = await state.task_for_update(session, task_id)
        assert found is not None
        await state.skip(session, found, by="zhangsan", now=clock.now())
        again = await state.done(session, found, by="zhangsan", now=clock.now())
        snoozed = state.snooze(found, clock.now() + timedelta(hours=1), by="x", now=clock.now())
    assert not again.changed and not snoozed.changed
    closed = await get(db, task_id)
    assert closed.state is TaskState.SKIPPED and len(closed.history) == 2


async def test_snooze_moves_due_and_escalation_then_wakes(
    db: Database, clock: ManualClock
) -> None:
    task_id = await task(
        db, clock, due_in=timedelta(minutes=30), escalate_after=timedelta(hours=1)
    )
    before = await get(db, task_id)
    until = clock.now() + timedelta(hours=2)
    async with db.sessions.begin() as session:
        found = await state.task_for_update(session, task_id)
        assert found is not None
        assert state.snooze(found, until, by="zhangsan", now=clock.now()).changed
    snoozed = await get(db, task_id)
    assert snoozed.state is TaskState.SNOOZED and snoozed.snoozed_until == until
    assert snoozed.due_at == until
    assert snoozed.escalate_at is not None and before.escalate_at is not None
    assert snoozed.escalate_at - snoozed.due_at == before.escalate_at - before.due_at
    async with db.sessions.begin() as session:
        found = await state.task_for_update(session, task_id)
        assert found is not None
        assert state.wake(found, now=until).changed
    woken = await get(db, task_id)
    assert woken.state is TaskState.OPEN and woken.snoozed_until is None
    assert [h["state"] for h in woken.history] == ["open", "snoozed", "open"]


async def test_reassign_makes_a_new_task_for_the_new_owner(
    db: Database, clock: ManualClock
) -> None:
    task_id = await task(db, clock)
    async with db.sessions.begin() as session:
        found = await state.task_for_update(session, task_id)
        assert found is not None
        change, new = await state.reassign(
            session, found, "wangwu", by="zhangsan", now=clock.now()
        )
        assert new is not None
        new_id = new.id
    assert change.changed
    old, moved = await get(db, task_id), await get(db, new_id)
    assert (
        old.state is TaskState.REASSIGNED
        and old.history[-1]["note"] == f"to wangwu (task {new_id})"
    )
    assert (moved.staff_userid, moved.state, moved.due_at) == (
        "wangwu",
        TaskState.OPEN,
        old.due_at,
    )


async def test_done_and_skip_wake_the_waiting_playbook(db: Database, clock: ManualClock) -> None:
    h = Harness(db, clock)
    await h.playbook("n", steps=[WAITING_NUDGE, *BRANCHES])
    won = await h.enroll("n", await h.customer("wm1"))
    lost = await h.enroll("n", await h.customer("wm2"))
    await h.run()
    first, second = await h.tasks()
    clock.advance(timedelta(minutes=10))
    async with db.sessions.begin() as session:
        one = await state.task_for_update(session, first.id)
        two = await state.task_for_update(session, second.id)
        assert one is not None and two is not None
        assert (await state.done(session, one, by="alice", now=clock.now())).woke
        assert (await state.skip(session, two, by="alice", now=clock.now())).woke
    await h.run()
    assert (await h.outcomes(won))[-2:] == [("call", "task_done"), ("won", "stopped")]
    assert (await h.outcomes(lost))[-2:] == [("call", "task_skipped"), ("lost", "stopped")]


async def test_expire_wakes_the_playbook_into_on_expired(db: Database, clock: ManualClock) -> None:
    h = Harness(db, clock)
    await h.playbook("n", steps=[WAITING_NUDGE, *BRANCHES])
    enrollment = await h.enroll("n", await h.customer("wm1"))
    await h.run()
    (waiting,) = await h.tasks()
    async with db.sessions.begin() as session:
        found = await state.task_for_update(session, waiting.id)
        assert found is not None
        assert (await state.expire(session, found, by="followups", now=clock.now())).woke
    await h.run()
    assert (await h.outcomes(enrollment))[-2:] == [("call", "expired"), ("late", "stopped")]
