"""A playbook run end to end in the database: enrolled by the real enroll(), executed by the
runner with a manual clock, each step's effects and trace checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sop.engine.steps.base import StepContext, StepResult
from sop.engine.steps.registry import STEPS
from sop.settings import SopSettings
from store.models import AgendaKind, AgendaState, EnrollmentState, Waiting
from tests.sop.engine.harness import Harness
from tests.support.clock import ManualClock
from tests.support.database import Database

# 09:00 in Shanghai is 01:00 UTC.
MORNING = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


@pytest.fixture
def h(db: Database, clock: ManualClock) -> Harness:
    clock.set(MORNING)
    return Harness(db, clock)


async def test_a_playbook_runs_each_step_at_its_time_and_completes(h: Harness) -> None:
    await h.playbook(
        "onboarding",
        steps=[
            {"id": "hello", "send": {"channel": "mass", "text": "Hi {{ customer.name }}"}},
            {"id": "mark", "after": "2h", "tag": "onboarded"},
            {"id": "call", "after": "1d at 10:00", "nudge": {"script": {"text": "Call them"}}},
        ],
    )
    customer = await h.customer("wm1", name="Ann")
    enrollment = await h.enroll("onboarding", customer)

    assert await h.run() == 1
    rows = await h.outbox()
    assert [(r.channel, r.idempotency_key, r.recipient) for r in rows] == [
        ("wecom_mass", f"enrollment:{enrollment}:seq:1", "wm1")
    ]
    assert rows[0].payload["text"] == {"content": "Hi Ann"}
    assert rows[0].payload["sender"] == "alice"

    h.clock.advance(timedelta(hours=2) - timedelta(seconds=1))
    assert await h.run() == 0
    h.clock.advance(timedelta(seconds=1))
    assert await h.run() == 1
    assert (await h.outbox())[-1].payload["add"] == ["onboarded"]

    agenda = await h.agenda(enrollment)
    # "1d at 10:00": the next calendar day at 10:00 local, whatever the hour now.
    assert agenda[-1].due_at == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    h.clock.set(agenda[-1].due_at)
    assert await h.run() == 1
    assert await h.run() == 0

    done = await h.enrollment(enrollment)
    assert done.state == EnrollmentState.COMPLETED
    assert done.end_reason == "ran past the last step (call)"
    assert await h.outcomes(enrollment) == [("hello", "done"), ("mark", "done"), ("call", "done")]
    runs = await h.runs(enrollment)
    assert runs[0].detail["text"] == "Hi Ann"
    assert runs[0].detail["outbox_key"] == f"enrollment:{enrollment}:seq:1"
    assert [a.state for a in await h.agenda(enrollment)] == [AgendaState.DONE] * 3


async def test_goto_if_and_stop_take_the_branches(h: Harness) -> None:
    await h.playbook(
        "branches",
        steps=[
            {"id": "check", "if": {"fields": {"vip": True}}, "then": "vip", "else": "plain"},
            {"id": "plain", "tag": "plain"},
            {"id": "out", "stop": "not a vip"},
            {"id": "vip", "tag": "vip"},
            {"id": "loop", "goto": "out"},
        ],
    )
    vip = await h.customer("wm-vip", custom_fields={"vip": True})
    plain = await h.customer("wm-plain", custom_fields={"vip": False})
    first, second = await h.enroll("branches", vip), await h.enroll("branches", plain)

    await h.run()

    assert await h.outcomes(first) == [
        ("check", "branch"),
        ("vip", "done"),
        ("loop", "branch"),
        ("out", "stopped"),
    ]
    assert (await h.runs(first))[0].detail["branch"] == "then"
    assert await h.outcomes(second) == [("check", "branch"), ("plain", "done"), ("out", "stopped")]
    ended = await h.enrollment(second)
    assert (ended.state, ended.end_reason) == (EnrollmentState.COMPLETED, "stop at step out")


async def test_catch_up_skips_a_late_send_and_runs_one_within_grace(h: Harness) -> None:
    await h.playbook(
        "late",
        catch_up="skip",
        steps=[
            {"send": {"channel": "mass", "text": "one"}},
            {"after": "1h", "send": {"channel": "mass", "text": "two"}},
        ],
    )
    h.settings = SopSettings(frequency_cap=None)
    h.runner = h.engine()
    customer = await h.customer()
    enrollment = await h.enroll("late", customer)

    h.clock.advance(timedelta(minutes=14))  # the engine was down, within 15 minutes of grace
    await h.run()
    h.clock.advance(timedelta(hours=3))  # step two was due 2 hours ago
    await h.run()

    assert await h.outcomes(enrollment) == [("1", "done"), ("2", "skipped_late")]
    assert len(await h.outbox()) == 1
    assert "late by 2:00:00" in (await h.runs(enrollment))[1].detail["reason"]
    assert (await h.enrollment(enrollment)).state == EnrollmentState.COMPLETED


async def test_catch_up_run_sends_however_late(h: Harness) -> None:
    await h.playbook("late", catch_up="run", steps=[{"send": {"channel": "mass", "text": "x"}}])
    enrollment = await h.enroll("late", await h.customer())
    h.clock.advance(timedelta(days=3))
    await h.run()
    assert await h.outcomes(enrollment) == [("1", "done")]


async def test_quiet_hours_move_a_send_to_their_end_but_not_a_tag(h: Harness) -> None:
    await h.playbook(
        "quiet",
        quiet_hours={"start": "21:00", "end": "08:00"},
        steps=[
            {"tag": "a"},
            {"after": "13h", "tag": "b"},  # 22:00 local: tags run in quiet hours
            {"send": {"channel": "mass", "text": "hi"}},  # moved to 08:00 local
        ],
    )
    enrollment = await h.enroll("quiet", await h.customer())
    await h.run()
    h.clock.advance(timedelta(hours=13))
    await h.run()
    due = (await h.agenda(enrollment))[-1].due_at
    assert due == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


async def test_wait_for_reply_times_out_to_its_branch(h: Harness) -> None:
    await h.playbook(
        "ask",
        steps=[
            {"id": "ask", "wait_for_reply": {"timeout": "1d", "on_timeout": "nudge"}},
            {"id": "thanks", "stop": True},
            {"id": "nudge", "tag": "silent"},
        ],
    )
    enrollment = await h.enroll("ask", await h.customer())
    await h.run()
    waiting = await h.enrollment(enrollment)
    assert waiting.waiting == Waiting.REPLY
    timeout = (await h.agenda(enrollment))[-1]
    assert (timeout.kind, timeout.due_at) == (
        AgendaKind.REPLY_TIMEOUT,
        h.clock.now() + timedelta(days=1),
    )

    h.clock.advance(timedelta(days=1))
    await h.run()
    assert await h.outcomes(enrollment) == [
        ("ask", "waiting"),
        ("ask", "timeout"),
        ("nudge", "done"),
    ]
    assert (await h.enrollment(enrollment)).waiting == Waiting.NONE


async def test_a_stale_timeout_row_is_skipped(h: Harness) -> None:
    """A reply moved the enrollment on after the timeout row was claimed-to-be: the timeout
    must not decide a second time."""
    await h.playbook("ask", steps=[{"wait_for_reply": {"timeout": "1h"}}, {"tag": "x"}])
    enrollment = await h.enroll("ask", await h.customer())
    await h.run()
    async with h.db.sessions.begin() as session:
        from store.models import Enrollment

        row = await session.get(Enrollment, enrollment)
        assert row is not None
        row.waiting = Waiting.NONE  # as a reply leaves it (the row itself stays pending)
    h.clock.advance(timedelta(hours=1))
    await h.run()
    agenda = await h.agenda(enrollment)
    assert agenda[-1].state == AgendaState.SKIPPED
    assert await h.outcomes(enrollment) == [("1", "waiting")]


async def test_a_step_that_raises_is_retried_then_fails_the_enrollment(h: Harness) -> None:
    await h.playbook("broken", steps=[{"send": {"channel": "mass", "text": "{{ 1 / 0 }}"}}])
    enrollment = await h.enroll("broken", await h.customer())
    await h.run()
    failed = await h.enrollment(enrollment)
    # A template that cannot render is not cured by retrying: failed at once, with the error.
    assert failed.state == EnrollmentState.FAILED
    assert "ZeroDivisionError" in (failed.end_reason or "")
    runs = await h.runs(enrollment)
    assert [r.outcome for r in runs] == ["failed"]
    assert (await h.agenda(enrollment))[0].last_error
    assert await h.outbox() == []


async def test_a_step_error_is_retried_with_backoff(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sop.engine import executor

    await h.playbook("flaky", steps=[{"tag": "x"}])
    enrollment = await h.enroll("flaky", await h.customer())
    calls = 0
    original = STEPS["tag"]

    async def flaky(run: StepContext) -> StepResult:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("upstream hiccup")
        return await original(run)

    monkeypatch.setattr(executor, "STEPS", {**STEPS, "tag": flaky})
    await h.run()
    row = (await h.agenda(enrollment))[0]
    assert (row.state, row.attempts, row.last_error) == (
        AgendaState.PENDING,
        1,
        "RuntimeError: upstream hiccup",
    )
    assert row.due_at == h.clock.now() + timedelta(seconds=30)
    h.clock.advance(timedelta(seconds=30))
    await h.run()
    assert (await h.agenda(enrollment))[0].due_at == h.clock.now() + timedelta(seconds=60)
    h.clock.advance(timedelta(seconds=60))
    await h.run()
    assert await h.outcomes(enrollment) == [("1", "error"), ("1", "error"), ("1", "done")]
    assert (await h.enrollment(enrollment)).state == EnrollmentState.COMPLETED


async def test_a_transient_error_is_retried_at_once_and_is_no_attempt(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sop.engine import executor

    await h.playbook("flaky", steps=[{"tag": "x"}])
    enrollment = await h.enroll("flaky", await h.customer())
    calls = 0
    original = STEPS["tag"]

    async def flaky(run: StepContext) -> StepResult:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("connection reset by peer")
        return await original(run)

    monkeypatch.setattr(executor, "STEPS", {**STEPS, "tag": flaky})
    assert await h.run() == 1
    row = (await h.agenda(enrollment))[0]
    assert (row.state, row.attempts, row.last_error) == (AgendaState.DONE, 0, None)
    assert await h.outcomes(enrollment) == [("1", "done")]
    assert len(await h.outbox()) == 1
