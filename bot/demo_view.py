"""What the demo shows once the story is over, and what it checks happened: customers
captured, enrollments, every step the engine ran, every call made to the platforms, the staff
tasks, and one customer's timeline."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from bot.console.views import customers_table, load_customer_rows, load_timeline, timeline_table
from bot.demo_script import CUSTOMER, FOLLOWER
from bot.server import Runtime
from store.models import Customer, Enrollment, MpFollower, StepRun, Task
from tests.support.fake_mp import FakeMp
from tests.support.fake_wecom import FakeWecom

#: Platform calls that deliver something to a person (token and lookup calls are left out).
DELIVERIES = {
    "externalcontact/send_welcome_msg": "welcome message",
    "message/send": "app message to staff",
    "externalcontact/mark_tag": "tag mirrored to WeCom",
    "externalcontact/add_msg_template": "mass message to confirm",
    "message/custom/send": "Official Account message",
    "message/update_template_card": "card updated",
}


def _clip(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _what(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    if "template_card" in body:
        card = body["template_card"]
        return (
            f"card: {card.get('main_title', {}).get('title', '')} {card.get('sub_title_text', '')}"
        )
    for key in ("text", "markdown"):
        if isinstance(body.get(key), dict):
            return str(body[key].get("content", ""))
    if "add_tag" in body:
        return f"add {body.get('add_tag')} remove {body.get('remove_tag', [])}"
    return ""


def _recipient(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("touser", "external_userid", "sender", "welcome_code"):
        if body.get(key):
            value = body[key]
            return ",".join(value) if isinstance(value, list) else str(value)
    return ""


async def show_results(
    runtime: Runtime, fake: FakeWecom, mp: FakeMp, console: Console
) -> list[str]:
    """Print the tables; return what the story expected but did not find."""
    zone = runtime.config.zone

    def local(moment: Any) -> str:
        return moment.astimezone(zone).strftime("%a %H:%M") if moment is not None else ""

    console.rule("Captured")
    console.print(customers_table(await load_customer_rows(runtime.sessions, 20)))
    async with runtime.sessions() as session:
        followers = {f.customer_id: f.openid for f in await session.scalars(select(MpFollower))}
        names = {
            c.id: c.name or c.external_userid or f"follower {followers.get(c.id, c.id)}"
            for c in await session.scalars(select(Customer))
        }
        enrollments = (await session.scalars(select(Enrollment).order_by(Enrollment.id))).all()
        runs = (await session.scalars(select(StepRun).order_by(StepRun.ran_at, StepRun.id))).all()
        tasks = (await session.scalars(select(Task).order_by(Task.id))).all()
        follower = await session.scalar(select(Customer).where(Customer.opted_out_at.is_not(None)))
    console.rule("Enrolled and run")
    table = Table("playbook", "customer", "state", "why it ended", title="Enrollments")
    by_id = {e.id: e for e in enrollments}
    for e in enrollments:
        table.add_row(
            e.playbook, names.get(e.customer_id or 0, ""), str(e.state), e.end_reason or ""
        )
    console.print(table)
    steps = Table(
        "when", "playbook", "customer", "step", "outcome", "what", title="Steps the engine ran"
    )
    for run in runs:
        enrollment = by_id.get(run.enrollment_id)
        detail = (
            run.detail.get("text")
            or run.detail.get("script")
            or run.detail.get("reason")
            or run.detail.get("branch")
            or ""
        )
        steps.add_row(
            local(run.ran_at),
            enrollment.playbook if enrollment else "",
            names.get(enrollment.customer_id or 0, "") if enrollment else "",
            run.step_id,
            run.outcome,
            _clip(str(detail)),
        )
    console.print(steps)
    console.rule("Sent and nudged")
    sent = Table("when", "API", "to", "what", title="Calls to the WeCom and WeChat APIs (fakes)")
    delivered: dict[str, int] = {}
    for call in sorted([*fake.calls, *mp.calls], key=lambda c: c.at):
        path = call.path.removeprefix("cgi-bin/")
        if path in DELIVERIES and call.errcode in (0, None):
            delivered[path] = delivered.get(path, 0) + 1
            sent.add_row(
                local(call.at), DELIVERIES[path], _recipient(call.json), _clip(_what(call.json))
            )
    console.print(sent)
    task_table = Table("created", "due", "staff", "task", "state", title="Staff tasks")
    for task in tasks:
        task_table.add_row(
            local(task.created_at),
            local(task.due_at),
            task.staff_userid,
            task.title,
            str(task.state),
        )
    console.print(task_table)
    found = await load_timeline(runtime.sessions, CUSTOMER, 50)
    if found is not None:
        console.print(timeline_table(*found))
    problems = []
    expected = {
        "externalcontact/send_welcome_msg": 1,
        "message/send": 2,
        "message/custom/send": 2,
        "externalcontact/mark_tag": 1,
    }
    for path, least in expected.items():
        if delivered.get(path, 0) < least:
            problems.append(
                f"expected at least {least} {DELIVERIES[path]} call(s),"
                f" saw {delivered.get(path, 0)}"
            )
    for run in runs:
        if run.outcome in ("skipped_late", "error", "expired", "no_channel", "no_customer"):
            playbook = by_id[run.enrollment_id].playbook if run.enrollment_id in by_id else "?"
            problems.append(f"{playbook} step {run.step_id}: {run.outcome} {dict(run.detail)}")
    if follower is None:
        problems.append(f"the follower {FOLLOWER} who wrote 退订 is not opted out")
    return problems
