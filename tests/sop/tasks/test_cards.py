"""A press on a task card: the task changes for its owner only, and the card is updated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sop.events import CardPressed
from sop.tasks.cards import CARD_UPDATE, CardPresses, update_card
from store.models import OutboxRow, TaskState
from tests.sop.tasks.world import SETTINGS, STAFF, ZONE, get, queued, task
from tests.support.clock import ManualClock
from tests.support.database import Database


def press(task_id: int, action: str, *, by: str = STAFF, code: str = "press-1") -> CardPressed:
    return CardPressed(
        occurred_at=datetime(2026, 11, 23, 9, tzinfo=UTC),
        source="wecom:sales",
        staff_userid=by,
        event_key=f"task:{task_id}:{action}",
        task_id=f"task-{task_id}",
        response_code=code,
        origin=f"task:{task_id}:card",
    )


async def pressed(db: Database, clock: ManualClock, event: CardPressed) -> None:
    async with db.sessions.begin() as session:
        await CardPresses(SETTINGS, clock, ZONE)(session, event)


async def test_done_updates_the_card_with_the_press_code(db: Database, clock: ManualClock) -> None:
    task_id = await task(db, clock)
    clock.advance(timedelta(minutes=3))
    await pressed(db, clock, press(task_id, "done"))
    assert (await get(db, task_id)).state is TaskState.DONE
    [update] = await queued(db, channel=CARD_UPDATE)
    assert update.recipient == STAFF and update.payload["response_code"] == "press-1"
    card = update.payload["template_card"]
    assert card["task_id"] == f"task-{task_id}" and card["replace_text"] == "✅ Done"
    assert card["main_title"] == {"title": "回访", "desc": "✅ Done · 11-23 17:03 · zhangsan"}
    assert update.expires_at == clock.now() + timedelta(hours=72)


async def test_snooze_button_snoozes_for_the_configured_hour(
    db: Database, clock: ManualClock
) -> None:
    task_id = await task(db, clock)
    await pressed(db, clock, press(task_id, "snooze"))
    snoozed = await get(db, task_id)
    assert snoozed.state is TaskState.SNOOZED
    assert snoozed.snoozed_until == clock.now() + timedelta(hours=1)
    [update] = await queued(db, channel=CARD_UPDATE)
    assert update.payload["template_card"]["replace_text"] == "Snoozed until 11-23 18:00"


async def test_a_press_by_someone_else_or_on_a_strange_key_changes_nothing(
    db: Database, clock: ManualClock
) -> None:
    task_id = await task(db, clock)
    await pressed(db, clock, press(task_id, "done", by="wangwu"))
    strange = press(task_id, "done")
    await pressed(db, clock, CardPressed(**{**strange.__dict__, "event_key": "task:x:done"}))
    assert (await get(db, task_id)).state is TaskState.OPEN
    assert await queued(db, channel=CARD_UPDATE) == []


async def test_without_a_press_the_sends_own_code_is_used(
    db: Database, clock: ManualClock
) -> None:
    task_id = await task(db, clock)
    async with db.sessions.begin() as session:
        card = await session.get(
            OutboxRow, (await queued(db, prefix=f"task:{task_id}:card"))[0].id
        )
        assert card is not None
        card.platform_ids = {"msgid": "m1", "response_code": "sent-code"}
    async with db.sessions.begin() as session:
        found = await session.get(type(await get(db, task_id)), task_id)
        assert found is not None
        assert await update_card(session, found, response_code=None, zone=ZONE, now=clock.now())
    [update] = await queued(db, channel=CARD_UPDATE)
    assert update.payload["response_code"] == "sent-code"
