"""Opting out (and back in) by keyword: the mark, leaving marketing, one confirmation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from sop.delivery.messages import MASS, MP_REPLY_WINDOW, mp_channel
from sop.events import MessageReceived, TagAdded
from store.models import Customer, EnrollmentState, Interaction
from tests.sop.engine.conftest import Engine
from tests.support.engine_factories import (
    add_customer,
    add_inbox_row,
    add_mp_follower,
    add_tag,
    playbook,
)

START = {"event": "tag_added", "tag": "start"}


async def _setup(engine: Engine, *, owner: str | None = "zs") -> tuple[int, int]:
    """A WeCom customer enrolled in a marketing and a service playbook; (customer, tag)."""
    await engine.load(
        playbook("promo", trigger=START),
        playbook("service", trigger=START, marketing=False),
        playbook("prices", trigger={"event": "message_received", "keywords": ["td", "stop"]}),
    )
    async with engine.db.sessions.begin() as session:
        customer = await add_customer(session, "wmAlice", now=engine.now, owner=owner)
        tag = await add_tag(session, "start", now=engine.now)
        customer_id, tag_id = customer.id, tag.id
    await engine.publish(
        TagAdded(**engine.stamp(), customer_id=customer_id, tag_id=tag_id, tag_name="start")
    )
    return customer_id, tag_id


async def _say(engine: Engine, customer_id: int, text: str, **extra: Any) -> int:
    source = extra.pop("source", "wecom:app")
    async with engine.db.sessions.begin() as session:
        inbox_id = await add_inbox_row(session, now=engine.now, source=source)
    await engine.publish(
        MessageReceived(
            **engine.stamp(inbox_id, source),
            msg_type="text",
            text=text,
            customer_id=customer_id,
            **extra,
        )
    )
    return inbox_id


async def _customer(engine: Engine, customer_id: int) -> Customer:
    async with engine.db.sessions() as session:
        return await session.get_one(Customer, customer_id)


async def _timeline(engine: Engine, customer_id: int) -> list[Interaction]:
    async with engine.db.sessions() as session:
        rows = await session.scalars(
            select(Interaction)
            .where(Interaction.customer_id == customer_id)
            .order_by(Interaction.id)
        )
        return list(rows)


async def test_opt_out_marks_leaves_marketing_and_confirms_once(engine: Engine) -> None:
    customer_id, _ = await _setup(engine)
    inbox_id = await _say(engine, customer_id, "  td ")
    assert (await _customer(engine, customer_id)).opted_out_at == engine.now
    states = {e.playbook: (e.state, e.end_reason) for e in await engine.enrollments()}
    assert states == {
        "promo": (EnrollmentState.EXITED, "opted out"),
        "service": (EnrollmentState.ACTIVE, None),
    }  # and "TD" did not trigger the keyword playbook
    [row] = await engine.outbox()
    assert (row.channel, row.recipient, row.customer_id) == (MASS, "wmAlice", customer_id)
    assert row.idempotency_key == f"optout:{customer_id}:{inbox_id}"
    assert row.payload["sender"] == "zs" and row.payload["external_userid"] == ["wmAlice"]
    assert row.payload["text"]["content"] == engine.settings.opt_out.confirmation
    [entry] = await _timeline(engine, customer_id)
    assert (entry.kind, entry.inbox_id) == ("opted_out", inbox_id)
    assert entry.data["enrollments_left"] == [
        e.id for e in await engine.enrollments() if e.playbook == "promo"
    ]
    engine.clock.advance(60)
    await _say(engine, customer_id, "STOP")  # already out: recorded, not confirmed again
    assert len(await engine.outbox()) == 1
    assert [e.kind for e in await _timeline(engine, customer_id)] == ["opted_out", "opted_out"]
    assert await engine.enrollments("prices") == []


async def test_a_sentence_with_the_word_is_an_ordinary_message(engine: Engine) -> None:
    customer_id, _ = await _setup(engine)
    await _say(engine, customer_id, "please stop the noise")
    assert (await _customer(engine, customer_id)).opted_out_at is None
    assert await engine.outbox() == []
    assert len(await engine.enrollments("prices")) == 1


async def test_opted_out_customers_do_not_enroll_in_marketing_until_they_opt_in(
    engine: Engine,
) -> None:
    customer_id, tag_id = await _setup(engine)
    await _say(engine, customer_id, "退订")
    engine.clock.advance(60)
    await _say(engine, customer_id, "Start")
    assert (await _customer(engine, customer_id)).opted_out_at is None
    confirmations = await engine.outbox()
    assert [r.payload["text"]["content"] for r in confirmations] == [
        engine.settings.opt_out.confirmation,
        engine.settings.opt_out.opt_in_confirmation,
    ]
    assert confirmations[1].idempotency_key.startswith(f"optin:{customer_id}:")
    assert [e.kind for e in await _timeline(engine, customer_id)] == ["opted_out", "opted_in"]


async def test_opt_in_word_from_a_customer_never_out_is_ordinary(engine: Engine) -> None:
    await engine.load(
        playbook("hello", trigger={"event": "message_received", "keywords": ["start"]})
    )
    async with engine.db.sessions.begin() as session:
        customer_id = (await add_customer(session, "wmAlice", now=engine.now, owner="zs")).id
    await _say(engine, customer_id, "START")
    assert await engine.outbox() == []
    assert len(await engine.enrollments("hello")) == 1


async def test_official_account_follower_is_confirmed_by_customer_service_message(
    engine: Engine,
) -> None:
    customer_id, _ = await _setup(engine, owner=None)
    async with engine.db.sessions.begin() as session:
        await add_mp_follower(session, customer_id, account="brand", openid="oA1", now=engine.now)
    await _say(
        engine, customer_id, "TD", source="mp:brand", data={"account": "brand", "openid": "oA1"}
    )
    [row] = await engine.outbox()
    assert (row.channel, row.recipient) == (mp_channel("brand"), "oA1")
    assert row.payload == {
        "msgtype": "text",
        "text": {"content": engine.settings.opt_out.confirmation},
    }
    assert row.expires_at == engine.now + MP_REPLY_WINDOW
    assert {e.playbook: e.state for e in await engine.enrollments()}["promo"] == (
        EnrollmentState.EXITED
    )


async def test_no_owner_no_confirmation_but_still_opted_out(engine: Engine) -> None:
    customer_id, _ = await _setup(engine, owner=None)
    await _say(engine, customer_id, "TD")
    assert (await _customer(engine, customer_id)).opted_out_at is not None
    assert await engine.outbox() == []
    [entry] = await _timeline(engine, customer_id)
    assert "skipped" in entry.data["confirmation"]
