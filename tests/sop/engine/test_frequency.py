"""The frequency cap counts marketing messages across every playbook."""

from __future__ import annotations

from datetime import timedelta

from sop.settings import FrequencyCap, SopSettings
from store.models import EnrollmentState
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database

SEND = {"send": {"channel": "mass", "text": "offer"}}


async def test_the_cap_is_shared_by_playbooks_and_a_capped_step_moves_on(
    db: Database, clock: ManualClock
) -> None:
    cap = FrequencyCap(messages=2, per=timedelta(days=1))
    h = Harness(db, clock, SopSettings(frequency_cap=cap))
    await h.playbook("a", steps=[SEND, {"tag": "after-a"}])
    await h.playbook("b", steps=[SEND])
    await h.playbook("c", reentry="always", steps=[SEND])
    await h.playbook("care", marketing=False, steps=[SEND])
    customer = await h.customer()
    a, b = await h.enroll("a", customer), await h.enroll("b", customer)
    await h.run()
    c, care = await h.enroll("c", customer), await h.enroll("care", customer)
    await h.run()

    assert await h.outcomes(a) == [("1", "done"), ("2", "done")]
    assert await h.outcomes(b) == [("1", "done")]
    assert await h.outcomes(c) == [("1", "capped")]
    assert "2 marketing messages" in (await h.runs(c))[0].detail["reason"]
    assert (await h.enrollment(c)).state == EnrollmentState.COMPLETED
    assert await h.outcomes(care) == [("1", "done")]  # not marketing: neither capped nor counted
    assert len(await h.touches()) == 2

    clock.advance(timedelta(days=1))
    again = await h.enroll("c", customer, key="c-again")
    await h.run()
    assert await h.outcomes(again) == [("1", "done")]


async def test_an_opted_out_customer_gets_no_marketing_send(
    db: Database, clock: ManualClock
) -> None:
    h = Harness(db, clock)
    await h.playbook("a", steps=[{"after": "1h", **SEND}])
    customer = await h.customer()
    enrollment = await h.enroll("a", customer)
    async with db.sessions.begin() as session:
        from store.models import Customer

        row = await session.get(Customer, customer)
        assert row is not None
        row.opted_out_at = clock.now()
    clock.advance(timedelta(hours=1))
    await h.run()
    assert await h.outcomes(enrollment) == [("1", "opted_out")]
    assert await h.outbox() == []
