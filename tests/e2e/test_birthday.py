"""birthday.yaml end to end: on the day of a customer's ``birthday`` custom field, at 10:00
Shanghai time, the greeting goes out as a one-customer mass message from the owner (who
confirms it in WeCom); the fire is taken once however many schedulers run it."""

from __future__ import annotations

from typing import Any

from sop.engine.fanout import FanOut
from sop.engine.scheduler import EngineScheduler
from store.models import CronFire, Enrollment, MassJob, MassRecipient, MassStatus
from tests.e2e.conftest import local
from tests.support.e2e import STAFF, ZONE, World

TODAY_MMDD = "wmBirthdayToday0000000000001"
TODAY_FULL = "wmBirthdayToday0000000000002"
TOMORROW = "wmBirthdayTomorrow00000000001"


def greetings(world: World) -> list[dict[str, Any]]:
    """The accepted mass messages that are birthday greetings."""
    return [
        call.json
        for call in world.wecom.calls_to("externalcontact/add_msg_template")
        if call.errcode == 0 and "生日快乐" in call.json["text"]["content"]
    ]


async def three_customers(world: World) -> None:
    for external_userid, name in [
        (TODAY_MMDD, "周女士"),
        (TODAY_FULL, "吴先生"),
        (TOMORROW, "郑女士"),
    ]:
        await world.customer_adds(external_userid, state="website", name=name)
    await world.settle()
    await world.set_fields(TODAY_MMDD, birthday="11-24")
    await world.set_fields(TODAY_FULL, birthday="1990-11-24")
    await world.set_fields(TOMORROW, birthday="11-25")


async def test_greetings_go_out_at_ten_on_the_birthday(world: World) -> None:
    await three_customers(world)
    await world.advance(to=local(24, 9, 59))
    assert greetings(world) == []
    await world.advance(to=local(24, 10, 1))

    sent = greetings(world)
    assert sorted(g["external_userid"][0] for g in sent) == [TODAY_MMDD, TODAY_FULL]
    assert all(len(g["external_userid"]) == 1 and g["sender"] == STAFF for g in sent)
    assert any(g["text"]["content"].startswith("周女士，生日快乐！") for g in sent)
    assert all("2026 年的生日礼券" in g["text"]["content"] for g in sent)
    births = await world.rows(Enrollment, playbook="birthday")
    assert len(births) == 2
    [fire] = await world.rows(CronFire, job="playbook:birthday", fire_time=local(24, 10))
    assert fire.finished_at is not None

    # The owner sends them from the client; the collector follows the task to the end.
    jobs = [j for j in await world.rows(MassJob) if "生日快乐" in j.summary]
    for job in jobs:
        world.wecom.confirm_mass(job.msgid)
    await world.advance(by=local(24, 11) - world.now)
    outcomes = {
        r.recipient: r.status
        for r in await world.rows(MassRecipient)
        if r.msgid in {j.msgid for j in jobs}
    }
    assert outcomes == {TODAY_MMDD: MassStatus.SENT, TODAY_FULL: MassStatus.SENT}

    await world.advance(to=local(25, 10, 1))  # the next day belongs to the 25th
    assert sorted(g["external_userid"][0] for g in greetings(world)) == [
        TODAY_MMDD,
        TODAY_FULL,
        TOMORROW,
    ]


async def test_a_fire_is_taken_once_by_every_scheduler(world: World) -> None:
    await three_customers(world)
    await world.advance(to=local(24, 10))
    assert [e for n, _, e in world.fired if n == "birthday"][-1] == 2
    assert await world.fire("birthday") is None  # the same process, again

    runtime = world.runtime
    other = EngineScheduler(
        FanOut(
            runtime.sessions, lambda: runtime.catalog, runtime.config.sop, ZONE, world.clock.now
        ),
        world.clock,
        wake=runtime.engine_wake,
        zone_default=ZONE,
    )
    assert await other.fire("birthday") is None  # another process at the same minute
    await world.settle()
    assert len(await world.rows(CronFire, job="playbook:birthday", fire_time=local(24, 10))) == 1
    assert len(await world.rows(Enrollment, playbook="birthday")) == 2
    assert len(greetings(world)) == 2
