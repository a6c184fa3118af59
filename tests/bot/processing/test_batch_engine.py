"""The engine inside an inbox batch: enrollments decided from what the batch read up front
(no statement per row) follow the same rules as one by one, and a failing row takes its
enrollment back, from the database and from what the rows after it are told."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callback import samples
from sop.engine import subscribe
from sop.events import CustomerAdded, DomainEvent
from store.models import AgendaItem, Enrollment, EnrollmentState, InboxRow, InboxState
from tests.support.clock import ManualClock
from tests.support.database import Database
from tests.support.e2e import APP, STAFF, World, running_world


@pytest.fixture
async def world(db: Database, clock: ManualClock) -> AsyncIterator[World]:
    async with running_world(db, clock) as running:
        running.runtime.sop_engine = None  # the steps wait: this is about enrolling
        yield running


class FailOnce:
    """Fails the first add of ``external_userid``, after the engine has enrolled it."""

    def __init__(self, external_userid: str) -> None:
        self.external_userid = external_userid
        self.armed = True

    async def __call__(self, _session: AsyncSession, event: DomainEvent) -> None:
        if (
            self.armed
            and isinstance(event, CustomerAdded)
            and event.external_userid == self.external_userid
        ):
            self.armed = False
            raise RuntimeError("the add fails after the engine enrolled")


async def test_one_batch_enrolls_like_one_by_one_and_a_failed_row_takes_its_enrollment_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def one_by_one(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("judged from the batch's facts, not statement by statement")

    monkeypatch.setattr(subscribe, "enroll", one_by_one)
    world.runtime.bus.subscribe(DomainEvent, FailOnce("wmBatchB"), batched=True)
    await world.customer_adds("wmBatchA", state="expo2026")
    await world.customer_adds("wmBatchB", state="expo2026")  # fails: no enrollment
    await world.customer_adds("wmBatchB", staff="lisi", state="expo2026")  # enrolls B
    await world.customer_adds("wmBatchA", staff="lisi", state="expo2026")  # never again
    await world.customer_adds("wmBatchC", state="spring")  # no playbook for this channel
    assert await world.runtime.processor.run_once() == 5

    rows = await world.rows(InboxRow)
    assert [row.state for row in rows] == [
        InboxState.DONE,
        InboxState.FAILED,
        InboxState.DONE,
        InboxState.DONE,
        InboxState.DONE,
    ]
    enrollments = await world.rows(Enrollment)
    assert [(e.playbook, e.staff_userid, e.state, e.seq) for e in enrollments] == [
        ("onboarding", "zhangsan", EnrollmentState.ACTIVE, 1),
        ("onboarding", "lisi", EnrollmentState.ACTIVE, 1),
    ]
    assert [e.key.rsplit(":", 1)[1] for e in enrollments] == [str(rows[0].id), str(rows[2].id)]
    assert enrollments[0].context["welcome_code"] and enrollments[0].context["channel"] == (
        "expo2026"
    )
    agenda = await world.rows(AgendaItem)
    assert [(a.enrollment_id, a.seq, a.step_index) for a in agenda] == [
        (enrollments[0].id, 1, 0),
        (enrollments[1].id, 1, 0),
    ]
    assert all(a.due_at == world.now for a in agenda)  # the welcome goes at once


async def removed(world: World, external_userid: str, staff: str = STAFF) -> None:
    """The customer removes ``staff`` (``del_follow_user``)."""
    at = int(world.now.timestamp())
    plaintext = (
        f"<xml><ToUserName>{world.wecom.corp_id}</ToUserName><FromUserName>sys</FromUserName>"
        f"<CreateTime>{at}</CreateTime><MsgType>event</MsgType>"
        "<Event>change_external_contact</Event><ChangeType>del_follow_user</ChangeType>"
        f"<UserID>{staff}</UserID><ExternalUserID>{external_userid}</ExternalUserID></xml>"
    )
    status, _ = await world.post(
        samples.sign_wecom(APP, world.wecom.corp_id, plaintext, timestamp=at, nonce=f"d{at}")
    )
    assert status == 200


async def test_after_an_exit_statement_by_statement_the_batch_goes_on_from_its_facts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def one_by_one(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("judged from the batch's facts, not statement by statement")

    monkeypatch.setattr(subscribe, "enroll", one_by_one)
    await world.customer_adds("wmExitA", state="expo2026")
    await removed(world, "wmExitA")  # onboarding exits (left): the engine's own statements
    await world.customer_adds("wmExitB", state="expo2026")
    await world.customer_adds("wmExitA", staff="lisi", state="expo2026")  # reentry: never
    assert await world.runtime.processor.run_once() == 4

    assert {row.state for row in await world.rows(InboxRow)} == {InboxState.DONE}
    enrollments = await world.rows(Enrollment)
    assert [(e.playbook, e.state, e.end_reason is not None) for e in enrollments] == [
        ("onboarding", EnrollmentState.EXITED, True),
        ("onboarding", EnrollmentState.ACTIVE, False),
    ]
