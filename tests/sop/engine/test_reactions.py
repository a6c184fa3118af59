"""Events acting on running enrollments: replies resume waits, exits end, goals are marked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from sop.engine import lifecycle
from sop.events import CustomerRemoved, MessageReceived, TagAdded
from store.models import (
    AgendaItem,
    AgendaKind,
    AgendaState,
    Enrollment,
    EnrollmentState,
    Tag,
    Waiting,
)
from tests.sop.engine.conftest import Engine
from tests.support.engine_factories import add_customer, add_tag, follow, playbook

ASK: list[dict[str, Any]] = [
    {
        "id": "ask",
        "wait_for_reply": {"timeout": "1d", "on_reply": "thanks", "on_timeout": "chase"},
    },
    {"id": "chase", "nudge": {"script": {"text": "No answer yet"}}},
    {"id": "thanks", "after": "2h", "nudge": {"script": {"text": "They answered"}}},
]


async def _customer(engine: Engine, name: str = "wmAlice", owner: str | None = "zs") -> int:
    async with engine.db.sessions.begin() as session:
        customer = await add_customer(session, name, now=engine.now, owner=owner)
        return customer.id


async def _start(engine: Engine, customer_id: int, playbook_name: str) -> Enrollment:
    """Enroll through a tag event (every playbook here triggers on the tag ``start``)."""
    async with engine.db.sessions.begin() as session:
        tag = await session.scalar(select(Tag).where(Tag.name == "start"))
        tag = tag or await add_tag(session, "start", now=engine.now)
        tag_id = tag.id
    await engine.publish(
        TagAdded(**engine.stamp(), customer_id=customer_id, tag_id=tag_id, tag_name="start")
    )
    mine = [e for e in await engine.enrollments(playbook_name) if e.customer_id == customer_id]
    return mine[-1]


def _book(name: str, **fields: Any) -> Any:
    fields.setdefault("trigger", {"event": "tag_added", "tag": "start"})
    return playbook(name, **fields)


async def _waiting_at(engine: Engine, enrollment_id: int, step_index: int) -> None:
    """What the step executor leaves behind after running a wait_for_reply step."""
    async with engine.db.sessions.begin() as session:
        enrollment = await session.get_one(Enrollment, enrollment_id)
        await session.execute(
            update(AgendaItem)
            .where(AgendaItem.enrollment_id == enrollment_id)
            .values(state=AgendaState.DONE)
        )
        enrollment.waiting = Waiting.REPLY
        lifecycle.schedule(
            session,
            enrollment,
            step_index=step_index,
            due_at=engine.now + timedelta(days=1),
            now=engine.now,
            kind=AgendaKind.REPLY_TIMEOUT,
        )


def _says(engine: Engine, customer_id: int | None, text: str, **extra: Any) -> MessageReceived:
    return MessageReceived(
        **engine.stamp(), msg_type="text", text=text, customer_id=customer_id, msg_id="m1", **extra
    )


async def _reload(engine: Engine, enrollment_id: int) -> Enrollment:
    [found] = [e for e in await engine.enrollments() if e.id == enrollment_id]
    return found


async def test_reply_resumes_the_on_reply_branch(engine: Engine) -> None:
    await engine.load(_book("survey", steps=ASK))
    customer_id = await _customer(engine)
    enrollment = await _start(engine, customer_id, "survey")
    await _waiting_at(engine, enrollment.id, 0)
    engine.clock.advance(timedelta(hours=3))
    await engine.publish(_says(engine, customer_id, "Yes, interested"))
    resumed = await _reload(engine, enrollment.id)
    assert resumed.waiting == Waiting.NONE and resumed.state == EnrollmentState.ACTIVE
    first, timeout, branch = await engine.agenda(enrollment.id)
    assert timeout.kind == AgendaKind.REPLY_TIMEOUT and timeout.state == AgendaState.CANCELLED
    assert (branch.kind, branch.state, branch.step_index) == (
        AgendaKind.STEP,
        AgendaState.PENDING,
        2,
    )
    assert branch.due_at == engine.now + timedelta(hours=2)  # the branch step's own after:
    [run] = await engine.step_runs(enrollment.id)
    assert (run.step_id, run.outcome, run.seq) == ("ask", "reply", timeout.seq)
    assert run.detail["text"] == "Yes, interested" and run.detail["next"] == "thanks"


async def test_reply_without_on_reply_goes_to_the_next_step_and_stop_completes(
    engine: Engine,
) -> None:
    steps: list[dict[str, Any]] = [
        {"nudge": {"script": {"text": "Ask them"}}},
        {"wait_for_reply": {"timeout": "1d"}},
        {"nudge": {"script": {"text": "Next"}}},
        {"id": "last", "wait_for_reply": {"timeout": "1d", "on_reply": "stop"}},
    ]
    await engine.load(_book("flow", steps=steps))
    customer_id = await _customer(engine)
    enrollment = await _start(engine, customer_id, "flow")
    await _waiting_at(engine, enrollment.id, 1)
    await engine.publish(_says(engine, customer_id, "ok"))
    assert (await engine.agenda(enrollment.id))[-1].step_index == 2
    await _waiting_at(engine, enrollment.id, 3)
    engine.clock.advance(60)
    await engine.publish(_says(engine, customer_id, "ok again"))
    done = await _reload(engine, enrollment.id)
    assert done.state == EnrollmentState.COMPLETED and done.end_reason is not None
    assert all(i.state != AgendaState.PENDING for i in await engine.agenda(enrollment.id))


async def test_reply_keywords_staff_messages_and_claimed_timeouts_do_not_resume(
    engine: Engine,
) -> None:
    steps = [{"wait_for_reply": {"timeout": "1d", "keywords": ["yes", "好"]}}, *ASK[1:]]
    await engine.load(_book("survey", steps=steps))
    customer_id = await _customer(engine)
    enrollment = await _start(engine, customer_id, "survey")
    await _waiting_at(engine, enrollment.id, 0)
    await engine.publish(_says(engine, customer_id, "maybe later"))
    await engine.publish(_says(engine, None, "yes", staff_userid="zs"))
    assert (await _reload(engine, enrollment.id)).waiting == Waiting.REPLY
    async with engine.db.sessions.begin() as session:  # the runner claimed the timeout
        await session.execute(
            update(AgendaItem)
            .where(AgendaItem.kind == AgendaKind.REPLY_TIMEOUT)
            .values(state=AgendaState.RUNNING)
        )
    await engine.publish(_says(engine, customer_id, "YES!"))
    assert (await _reload(engine, enrollment.id)).waiting == Waiting.REPLY
    assert await engine.step_runs(enrollment.id) == []
    async with engine.db.sessions.begin() as session:
        await session.execute(
            update(AgendaItem)
            .where(AgendaItem.kind == AgendaKind.REPLY_TIMEOUT)
            .values(state=AgendaState.PENDING)
        )
    await engine.publish(_says(engine, customer_id, "好的"))
    assert (await _reload(engine, enrollment.id)).waiting == Waiting.NONE
    [run] = await engine.step_runs(enrollment.id)
    assert run.detail["keyword"] == "好"


async def test_exit_on_tag_ends_and_clears_the_agenda(engine: Engine) -> None:
    await engine.load(_book("nurture", exit={"tags": ["成交/已购买"]}), _book("other"))
    customer_id = await _customer(engine)
    enrollment = await _start(engine, customer_id, "nurture")
    async with engine.db.sessions.begin() as session:
        bought = await add_tag(session, "已购买", group="成交", now=engine.now)
        elsewhere = await add_tag(session, "已购买", group="活动", now=engine.now)
        bought_id, elsewhere_id = bought.id, elsewhere.id
    await engine.publish(
        TagAdded(**engine.stamp(), customer_id=customer_id, tag_id=elsewhere_id, tag_name="已购买")
    )
    assert (await _reload(engine, enrollment.id)).state == EnrollmentState.ACTIVE
    await engine.publish(
        TagAdded(**engine.stamp(), customer_id=customer_id, tag_id=bought_id, tag_name="已购买")
    )
    ended = await _reload(engine, enrollment.id)
    assert (ended.state, ended.end_reason) == (EnrollmentState.EXITED, "tagged 成交/已购买")
    assert [i.state for i in await engine.agenda(enrollment.id)] == [AgendaState.CANCELLED]
    [other] = await engine.enrollments("other")
    assert other.state == EnrollmentState.ACTIVE


async def test_exit_when_replied_and_when_left(engine: Engine) -> None:
    await engine.load(_book("chatty", exit={"replied": True, "left": False}), _book("quiet"))
    customer_id = await _customer(engine, owner="zs")
    chatty = await _start(engine, customer_id, "chatty")
    [quiet] = await engine.enrollments("quiet")
    await engine.publish(_says(engine, customer_id, "hello"))
    assert (await _reload(engine, chatty.id)).end_reason == "replied"
    assert (await _reload(engine, quiet.id)).state == EnrollmentState.ACTIVE
    async with engine.db.sessions.begin() as session:
        await follow(session, customer_id, "lisi", added_at=engine.now)
    removed: dict[str, Any] = {
        "customer_id": customer_id,
        "external_userid": "wmAlice",
        "removed_by": "customer",
    }
    await engine.publish(CustomerRemoved(**engine.stamp(), staff_userid="lisi", **removed))
    assert (await _reload(engine, quiet.id)).state == EnrollmentState.ACTIVE  # zs still follows
    await engine.publish(CustomerRemoved(**engine.stamp(), staff_userid="zs", **removed))
    left = await _reload(engine, quiet.id)
    assert left.state == EnrollmentState.EXITED and left.end_reason is not None
    assert left.end_reason.startswith("left")


async def test_goal_marked_once_within_its_window(engine: Engine) -> None:
    await engine.load(
        _book("convert", goal={"tag": "已购买", "within": "7d"}),
        _book("slow", goal={"tag": "已购买", "within": "1d"}),
        _book("reply-goal", goal={"event": "message_received"}),
    )
    customer_id = await _customer(engine)
    await _start(engine, customer_id, "convert")
    async with engine.db.sessions.begin() as session:
        bought = await add_tag(session, "已购买", now=engine.now)
        bought_id = bought.id
    engine.clock.advance(timedelta(days=3))
    met_at = engine.now
    await engine.publish(
        TagAdded(**engine.stamp(), customer_id=customer_id, tag_id=bought_id, tag_name="已购买")
    )
    engine.clock.advance(timedelta(days=1))
    await engine.publish(
        TagAdded(**engine.stamp(), customer_id=customer_id, tag_id=bought_id, tag_name="已购买")
    )
    goals = {e.playbook: e.goal_met_at for e in await engine.enrollments()}
    assert goals == {"convert": met_at, "slow": None, "reply-goal": None}
    await engine.publish(_says(engine, customer_id, "thanks"))
    goals = {e.playbook: e.goal_met_at for e in await engine.enrollments()}
    assert goals["reply-goal"] == engine.now and goals["convert"] == met_at


async def test_the_event_that_enrolls_does_not_exit_or_convert_its_enrollment(
    engine: Engine,
) -> None:
    await engine.load(_book("loop", exit={"tags": ["start"]}, goal={"tag": "start"}))
    customer_id = await _customer(engine)
    enrollment = await _start(engine, customer_id, "loop")
    assert enrollment.state == EnrollmentState.ACTIVE and enrollment.goal_met_at is None
