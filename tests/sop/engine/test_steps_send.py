"""``send`` over each channel: welcome inside its window only, mass from the owner, mp to the
follower inside the 48-hour window."""

from __future__ import annotations

from datetime import timedelta

from sop.delivery.messages import MASS, WELCOME
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.engine_factories import add_mp_follower


async def test_welcome_uses_the_enrollments_code_inside_its_window(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook("hi", steps=[{"send": {"channel": "welcome", "text": "Welcome!"}}])
    customer = await h.customer()
    added = clock.now().isoformat()
    on_time = await h.enroll(
        "hi", customer, key="k1", context={"welcome_code": "W1", "added_at": added}
    )
    await h.run()
    rows = await h.outbox()
    assert [(r.channel, r.recipient, r.payload["welcome_code"]) for r in rows] == [
        (WELCOME, "wm1", "W1")
    ]
    assert rows[0].expires_at == clock.now() + timedelta(seconds=20)
    assert await h.outcomes(on_time) == [("1", "done")]
    assert await h.touches() == []  # a welcome is not marketing


async def test_welcome_after_its_window_is_recorded_expired(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook("hi", reentry="always", steps=[{"send": {"channel": "welcome", "text": "W"}}])
    customer = await h.customer()
    late = await h.enroll(
        "hi",
        customer,
        key="k1",
        context={"welcome_code": "W1", "added_at": clock.now().isoformat()},
    )
    clock.advance(timedelta(seconds=21))
    await h.run()
    no_code = await h.enroll("hi", customer, key="k2", context={})
    await h.run()
    assert await h.outbox() == []
    assert await h.outcomes(late) == [("1", "expired")]
    assert "window closed" in (await h.runs(late))[0].detail["reason"]
    assert await h.outcomes(no_code) == [("1", "expired")]


async def test_mass_goes_from_the_owner_and_counts_a_touch(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook(
        "m", steps=[{"send": {"channel": "mass", "text": "Hello {{ customer.name }}"}}]
    )
    customer = await h.customer("wm9", owner="bob", name="Bo")
    await h.enroll("m", customer)
    await h.run()
    (row,) = await h.outbox()
    assert (row.channel, row.recipient) == (MASS, "wm9")
    assert row.payload["sender"] == "bob"
    assert row.payload["external_userid"] == ["wm9"]
    assert len(await h.touches()) == 1


async def test_mp_needs_a_follower_with_an_open_window(db: Database, clock: ManualClock) -> None:
    h = Harness(db, clock)
    step = {"send": {"channel": "mp", "account": "main", "text": "News"}}
    await h.playbook("mp", reentry="always", steps=[step])
    customer = await h.customer()
    stranger = await h.enroll("mp", customer, key="k1")
    await h.run()
    async with db.sessions.begin() as session:
        await add_mp_follower(session, customer, account="main", openid="o-1", now=clock.now())
    follower = await h.enroll("mp", customer, key="k2")
    await h.run()
    assert await h.outcomes(stranger) == [("1", "no_channel")]
    assert await h.outcomes(follower) == [("1", "done")]
    (row,) = await h.outbox()
    assert (row.channel, row.recipient, row.payload) == (
        "mp:main",
        "o-1",
        {"msgtype": "text", "text": {"content": "News"}},
    )
    assert row.expires_at == clock.now() + timedelta(hours=48)
