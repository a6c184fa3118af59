"""Enrollment through the bus and through ``enroll()``: the rules every trigger obeys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sop.engine.enroll import Skip, enroll
from sop.events import CustomerAdded, CustomerRemoved
from sop.playbooks.model import Playbook
from store.models import AgendaKind, AgendaState, EnrollmentState, FollowState
from tests.sop.engine.conftest import ZONE, Engine, wait_until_blocked
from tests.support.engine_factories import (
    add_customer,
    add_inbox_row,
    add_staff,
    add_tag,
    follow,
    playbook,
    tag_customer,
)


async def _customer(engine: Engine, external_userid: str = "wmAlice", **extra: Any) -> int:
    async with engine.db.sessions.begin() as session:
        customer = await add_customer(session, external_userid, now=engine.now, **extra)
        return customer.id


def _added(
    engine: Engine, customer_id: int, inbox_id: int | None = None, **extra: Any
) -> CustomerAdded:
    return CustomerAdded(
        **engine.stamp(inbox_id),
        customer_id=customer_id,
        external_userid="wmAlice",
        staff_userid=extra.pop("staff_userid", "zhangsan"),
        **extra,
    )


async def _enroll(engine: Engine, name: str, customer_id: int, key: str) -> Any:
    async with engine.db.sessions.begin() as session:
        return await enroll(
            session,
            catalog=engine.catalog,
            playbook_name=name,
            customer_id=customer_id,
            key=key,
            context={"via": "test"},
            now=engine.now,
            settings=engine.settings,
            zone_default=ZONE,
        )


async def _end_all(engine: Engine) -> None:
    async with engine.db.sessions.begin() as session:
        for enrollment in await engine.enrollments():
            row = await session.get_one(type(enrollment), enrollment.id)
            row.state, row.ended_at = EnrollmentState.COMPLETED, engine.now


async def test_customer_added_enrolls_with_its_first_step_due(engine: Engine) -> None:
    await engine.load(
        playbook("onboarding", trigger={"event": "customer_added", "channel": ["expo"]})
    )
    customer_id = await _customer(engine)
    async with engine.db.sessions.begin() as session:
        inbox_id = await add_inbox_row(session, now=engine.now)
    await engine.publish(
        _added(engine, customer_id, inbox_id, channel_state="expo", welcome_code="WC")
    )
    [enrollment] = await engine.enrollments()
    assert enrollment.key == f"onboarding:c{customer_id}:inbox:{inbox_id}"
    assert enrollment.state == EnrollmentState.ACTIVE
    assert enrollment.staff_userid == "zhangsan"
    assert enrollment.version_id == engine.catalog.latest("onboarding").version_id
    assert enrollment.context["welcome_code"] == "WC"
    assert enrollment.context["channel"] == "expo"
    [item] = await engine.agenda(enrollment.id)
    assert (item.seq, item.step_index, item.kind) == (1, 0, AgendaKind.STEP)
    assert (item.state, item.due_at) == (AgendaState.PENDING, engine.now)
    assert enrollment.seq == 1


async def test_other_channels_and_half_adds_do_not_enroll(engine: Engine) -> None:
    await engine.load(
        playbook("onboarding", trigger={"event": "customer_added", "channel": ["expo"]})
    )
    customer_id = await _customer(engine)
    await engine.publish(_added(engine, customer_id, channel_state="ads"))
    await engine.publish(_added(engine, customer_id, channel_state="expo", half=True))
    assert await engine.enrollments() == []


async def test_duplicate_event_enrolls_once(engine: Engine) -> None:
    await engine.load(playbook("onboarding", reentry="always"))
    customer_id = await _customer(engine)
    async with engine.db.sessions.begin() as session:
        inbox_id = await add_inbox_row(session, now=engine.now)
    await engine.publish(_added(engine, customer_id, inbox_id))
    await _end_all(engine)  # even once the first has ended, the same occurrence is a duplicate
    engine.clock.advance(60)
    await engine.publish(_added(engine, customer_id, inbox_id))
    assert len(await engine.enrollments()) == 1
    assert (
        await _enroll(
            engine, "onboarding", customer_id, f"onboarding:c{customer_id}:inbox:{inbox_id}"
        )
    ).skip == Skip.DUPLICATE


async def test_first_step_timing_uses_the_playbook_zone_and_quiet_hours(engine: Engine) -> None:
    await engine.load(
        playbook(
            "later",
            timezone="Asia/Shanghai",
            quiet_hours={"start": "22:00", "end": "09:00"},
            steps=[{"after": "1d at 10:00", "nudge": {"script": {"text": "hi"}}}],
        ),
        playbook(
            "quiet",
            quiet_hours={"start": "22:00", "end": "09:00"},
            steps=[{"nudge": {"script": {"text": "hi"}}}],
        ),
    )
    engine.clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))  # 23:00 in Shanghai
    customer_id = await _customer(engine)
    await engine.publish(_added(engine, customer_id))
    by_name = {e.playbook: e for e in await engine.enrollments()}
    [later] = await engine.agenda(by_name["later"].id)
    assert later.due_at == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # the next day, 10:00 local
    [quiet] = await engine.agenda(by_name["quiet"].id)
    assert quiet.due_at == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 24th 09:00 local


async def test_one_active_enrollment_per_customer(engine: Engine) -> None:
    await engine.load(playbook("onboarding", reentry="always"))
    customer_id = await _customer(engine)
    assert await _enroll(engine, "onboarding", customer_id, "k1")
    result = await _enroll(engine, "onboarding", customer_id, "k2")
    assert result.skip == Skip.ACTIVE and result.enrollment is None
    await _end_all(engine)
    assert await _enroll(engine, "onboarding", customer_id, "k3")


async def test_reentry_never(engine: Engine) -> None:
    await engine.load(playbook("onboarding"))  # never is the default
    customer_id = await _customer(engine)
    assert await _enroll(engine, "onboarding", customer_id, "k1")
    await _end_all(engine)
    engine.clock.advance(timedelta(days=400))
    assert (await _enroll(engine, "onboarding", customer_id, "k2")).skip == Skip.REENTRY


async def test_reentry_after_a_duration_since_the_previous_ended(engine: Engine) -> None:
    await engine.load(playbook("onboarding", reentry="30d"))
    customer_id = await _customer(engine)
    assert await _enroll(engine, "onboarding", customer_id, "k1")
    engine.clock.advance(timedelta(days=10))
    await _end_all(engine)
    engine.clock.advance(timedelta(days=29))
    refused = await _enroll(engine, "onboarding", customer_id, "k2")
    assert refused.skip == Skip.REENTRY
    assert "allowed from" in refused.detail
    engine.clock.advance(timedelta(days=1))
    assert await _enroll(engine, "onboarding", customer_id, "k3")


async def test_audience_excludes(engine: Engine) -> None:
    await engine.load(playbook("vip", audience={"tags": {"any": ["VIP"]}}))
    async with engine.db.sessions.begin() as session:
        vip = await add_customer(session, "wmVip", now=engine.now)
        plain = await add_customer(session, "wmPlain", now=engine.now)
        tag = await add_tag(session, "VIP", group="等级", now=engine.now)
        await tag_customer(session, vip.id, tag, now=engine.now)
        vip_id, plain_id = vip.id, plain.id
    assert (await _enroll(engine, "vip", plain_id, "k1")).skip == Skip.AUDIENCE
    assert await _enroll(engine, "vip", vip_id, "k2")
    assert [e.customer_id for e in await engine.enrollments()] == [vip_id]


async def test_opted_out_customers_skip_marketing_playbooks_only(engine: Engine) -> None:
    await engine.load(playbook("promo"), playbook("service", marketing=False))
    customer_id = await _customer(engine, opted_out_at=engine.now - timedelta(days=1))
    await engine.publish(_added(engine, customer_id))
    assert [e.playbook for e in await engine.enrollments()] == ["service"]
    assert (await _enroll(engine, "promo", customer_id, "k")).skip == Skip.OPTED_OUT


async def test_disabled_unknown_and_missing(engine: Engine) -> None:
    await engine.load(playbook("paused", enabled=False))
    customer_id = await _customer(engine)
    await engine.publish(_added(engine, customer_id))
    assert await engine.enrollments() == []
    assert (await _enroll(engine, "paused", customer_id, "k")).skip == Skip.DISABLED
    assert (await _enroll(engine, "nope", customer_id, "k")).skip == Skip.UNKNOWN
    assert (await _enroll(engine, "paused", customer_id, "k")).enrollment is None


async def test_staff_defaults_to_the_customers_current_owner(engine: Engine) -> None:
    await engine.load(playbook("promo", trigger={"manual": True}))
    start = engine.now
    async with engine.db.sessions.begin() as session:
        await add_staff(session, "zhangsan", now=start)
        await add_staff(session, "lisi", now=start)
        customer = await add_customer(session, "wmA", now=start, owner="zhangsan")
        await follow(session, customer.id, "lisi", added_at=start + timedelta(days=1))
        await follow(
            session,
            customer.id,
            "wangwu",
            added_at=start + timedelta(days=2),
            state=FollowState.REMOVED,
        )
        customer_id = customer.id
    result = await _enroll(engine, "promo", customer_id, "k")
    assert result.enrollment is not None
    assert result.enrollment.staff_userid == "lisi"
    assert result.enrollment.context == {"via": "test"}


async def test_new_version_for_new_enrollments_old_ones_keep_theirs(engine: Engine) -> None:
    first = await engine.load(playbook("onboarding"))
    alice = await _customer(engine, "wmAlice")
    await engine.publish(_added(engine, alice))
    changed: Playbook = playbook(
        "onboarding", steps=[{"nudge": {"script": {"text": "A new script"}}}]
    )
    second = await engine.load(changed)
    bob = await _customer(engine, "wmBob")
    await engine.publish(_added(engine, bob))
    old, new = await engine.enrollments()
    assert old.version_id == first.latest("onboarding").version_id
    assert new.version_id == second.latest("onboarding").version_id != old.version_id
    async with engine.db.sessions() as session:
        kept = await second.get_version(session, old.version_id)
    assert kept.steps[0].nudge is not None
    assert kept.steps[0].nudge.script.text == "Say hello to {{ customer.name }}"


async def test_a_duplicate_key_from_a_concurrent_transaction_keeps_the_callers_transaction(
    engine: Engine,
) -> None:
    """Another transaction takes the key first: enroll() says DUPLICATE and the caller's
    transaction goes on (its own writes commit)."""
    await engine.load(playbook("birthday", trigger={"manual": True}, reentry="always"))
    first_id = await _customer(engine, "wmA")
    second_id = await _customer(engine, "wmB")
    first = engine.db.sessions()
    await first.begin()
    taken = await enroll(
        first,
        catalog=engine.catalog,
        playbook_name="birthday",
        customer_id=first_id,
        key="birthday:2026",
        now=engine.now,
        settings=engine.settings,
        zone_default=ZONE,
    )
    assert taken

    async def other() -> Any:
        async with engine.db.sessions.begin() as session:
            result = await enroll(
                session,
                catalog=engine.catalog,
                playbook_name="birthday",
                customer_id=second_id,
                key="birthday:2026",
                now=engine.now,
                settings=engine.settings,
                zone_default=ZONE,
            )
            later = await enroll(
                session,
                catalog=engine.catalog,
                playbook_name="birthday",
                customer_id=second_id,
                key="birthday:2026:b",
                now=engine.now,
                settings=engine.settings,
                zone_default=ZONE,
            )
            return result, later

    task = asyncio.create_task(other())
    await wait_until_blocked(engine.db)
    await first.commit()
    await first.close()
    result, later = await task
    assert result.skip == Skip.DUPLICATE
    assert later
    assert sorted(e.key for e in await engine.enrollments()) == [
        "birthday:2026",
        "birthday:2026:b",
    ]


async def test_customer_removed_trigger(engine: Engine) -> None:
    await engine.load(
        playbook(
            "winback", marketing=False, trigger={"event": "customer_removed", "by": "customer"}
        )
    )
    customer_id = await _customer(engine)
    for removed_by in ("staff", "customer"):
        engine.clock.advance(1)
        await engine.publish(
            CustomerRemoved(
                **engine.stamp(),
                customer_id=customer_id,
                external_userid="wmAlice",
                staff_userid="zs",
                removed_by=removed_by,
            )
        )
    [enrollment] = await engine.enrollments()
    assert enrollment.context["removed_by"] == "customer"
