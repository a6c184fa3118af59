"""A card press reaches whoever created the card: outbox row -> fake WeCom -> callback -> route."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.wecom import WecomApiError, WecomClient
from sop.delivery import messages
from sop.delivery.card_routes import CardRoutes
from sop.delivery.messages import Button
from sop.events import CardPressed, EventBus
from store.models import Interaction
from tests.bot.processing import samples
from tests.bot.processing.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.fake_wecom import FakeWecom
from tests.support.outbox import AGENT_ID, SenderFactory, put, row_of

BUTTONS = [Button("完成", "done"), Button("稍后", "later", style=2)]


def pressed(task_id: str, key: str = "done", by: str = "zhangsan") -> str:
    """The platform's template_card_event (DOC 90240) for a press on card ``task_id``."""
    return (
        samples.DOC_90240_TEMPLATE_CARD.replace("taskid111", task_id)
        .replace("key111", key)
        .replace("[FromUser]", f"[{by}]")
        .replace("text_notice", "button_interaction")
    )


class Recorder:
    def __init__(self) -> None:
        self.presses: list[CardPressed] = []

    async def __call__(self, _session: AsyncSession, event: CardPressed) -> None:
        self.presses.append(event)


async def send_card(
    db: Database, clock: ManualClock, make_sender: SenderFactory, key: str, task_id: str
) -> int:
    card = messages.button_card(task_id=task_id, title="回访 Alice", buttons=BUTTONS)
    row_id = await put(db, clock, key, card)
    assert (await make_sender().run_once()).sent == 1
    return row_id


async def test_a_press_reaches_the_route_of_the_cards_creator(
    db: Database, clock: ManualClock, fake_wecom: FakeWecom, make_sender: SenderFactory
) -> None:
    row_id = await send_card(db, clock, make_sender, "task:42:card", "task-42")
    bus = EventBus()
    routes, tasks, enrollments = CardRoutes(bus), Recorder(), Recorder()
    routes.on("task:", tasks)
    routes.on("enrollment:", enrollments)

    await Harness(db, clock, bus).feed(pressed("task-42"))

    [press] = tasks.presses
    assert (press.outbox_id, press.origin, press.event_key, press.staff_userid) == (
        row_id,
        "task:42:card",
        "done",
        "zhangsan",
    )
    assert enrollments.presses == []
    assert fake_wecom.outbound.delivered_to("zhangsan")[0].msgtype == "template_card"


async def test_the_longest_prefix_wins(db: Database, clock: ManualClock) -> None:
    routes, broad, narrow = CardRoutes(EventBus()), Recorder(), Recorder()
    routes.on("task:", broad)
    routes.on("task:urgent:", narrow)

    assert routes.route_of("task:urgent:7") is narrow
    assert routes.route_of("task:7") is broad
    assert routes.route_of("campaign:7") is None
    with pytest.raises(ValueError, match="already taken"):
        routes.on("task:", narrow)


async def test_an_unrouted_press_is_logged_and_kept_on_the_timeline(
    db: Database,
    clock: ManualClock,
    fake_wecom: FakeWecom,
    make_sender: SenderFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    row_id = await send_card(db, clock, make_sender, "campaign:9:zhangsan", "camp-9")
    bus = EventBus()
    CardRoutes(bus).on("task:", Recorder())
    harness = Harness(db, clock, bus)

    with caplog.at_level(logging.WARNING, logger="sop.delivery.card_routes"):
        await harness.feed(pressed("camp-9", key="later"))

    assert "no route claims the origin" in caplog.text
    assert "'campaign:9:zhangsan'" in caplog.text
    [entry] = await harness.all(Interaction, kind="card_pressed")
    assert (entry.data["outbox_id"], entry.data["origin"]) == (row_id, "campaign:9:zhangsan")


async def test_a_card_not_sent_from_the_outbox_has_no_origin(
    db: Database, clock: ManualClock
) -> None:
    bus = EventBus()
    recorder = Recorder()
    CardRoutes(bus).on("task:", recorder)
    harness = Harness(db, clock, bus)

    await harness.feed(pressed("elsewhere-1"))

    [press] = harness.published(CardPressed)
    assert (press.outbox_id, press.origin) == (None, None)
    assert recorder.presses == []


async def test_a_sent_card_is_updated_with_its_response_code(
    db: Database,
    clock: ManualClock,
    fake_wecom: FakeWecom,
    make_sender: SenderFactory,
    wecom_client: WecomClient,
) -> None:
    row_id = await send_card(db, clock, make_sender, "task:43:card", "task-43")
    code = (await row_of(db, row_id)).platform_ids["response_code"]

    await wecom_client.update_template_card(
        agent_id=AGENT_ID, response_code=code, replace_name="已完成"
    )

    [update] = fake_wecom.calls_to("message/update_template_card")
    assert update.json == {
        "agentid": AGENT_ID,
        "response_code": code,
        "button": {"replace_name": "已完成"},
    }
    assert [d.api for d in fake_wecom.outbound.delivered_to("zhangsan")] == [
        "message/send",
        "message/update_template_card",
    ]
    with pytest.raises(WecomApiError) as refused:
        await wecom_client.update_template_card(
            agent_id=AGENT_ID, response_code="no-such-code", replace_name="x"
        )
    assert refused.value.errcode == 40058
    with pytest.raises(ValueError, match="exactly one of"):
        await wecom_client.update_template_card(agent_id=AGENT_ID, response_code=code)
