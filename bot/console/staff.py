"""``scrm staff transfer`` and ``scrm report staff``: handovers and how the team is doing.

A transfer recorded here is the same job a departure records: the running server's poller
makes the platform calls and follows them to the end; ``scrm staff transfers`` shows where
each job stands and why a customer did not move.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from bot.console.context import config_of, open_sessions, run

if TYPE_CHECKING:
    from sop.staff.plan import TransferPlan
    from store.models import TransferItem, TransferJob


@click.group()
def staff() -> None:
    """Staff handovers (离职继承 / 在职继承)."""


@staff.command("transfer")
@click.argument("from_userid", metavar="FROM")
@click.argument("to_userid", metavar="TO")
@click.option(
    "--customers",
    multiple=True,
    help="Only these customers (external_userid or id; repeat or comma-separate). "
    "Without it: every customer and group of FROM.",
)
@click.option("--message", help="在职继承: what the platform sends each customer (max 200).")
@click.option("--dry-run", is_flag=True, help="Show what would move; record nothing.")
@click.option("--actor", default="operator", show_default=True, help="Name in the audit log.")
@click.pass_context
def transfer(
    ctx: click.Context,
    *,
    from_userid: str,
    to_userid: str,
    customers: tuple[str, ...],
    message: str | None,
    dry_run: bool,
    actor: str,
) -> None:
    """Hand FROM's customers, groups, open tasks and running playbooks to TO."""
    from rich.console import Console

    from sop.staff.plan import plan_transfer
    from sop.staff.transfer import record_transfer

    config = config_of(ctx)
    wanted = [c.strip() for value in customers for c in value.split(",") if c.strip()] or None

    async def go() -> tuple[TransferPlan, int | None]:
        now = datetime.now(UTC)
        async with open_sessions(config) as sessions, sessions.begin() as session:
            plan = await plan_transfer(
                session, from_userid, to_userid, customers=wanted, groups=wanted is None
            )
            if plan.not_found:
                raise click.ClickException(
                    f"{from_userid} has no active relationship with: "
                    f"{', '.join(plan.not_found)} (check the ids with `scrm customers`)"
                )
            if dry_run:
                return plan, None
            job = await record_transfer(
                session,
                plan,
                key=f"operator:{from_userid}:{to_userid}:{now.isoformat()}",
                actor=actor,
                reason="scrm staff transfer",
                message=message or config.staff.handover_message,
                notify=config.staff.notify_successor,
                now=now,
            )
            return plan, job.id

    try:
        plan, job_id = run(go())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    counts = plan.counts()
    what = ", ".join(f"{n} {name}" for name, n in counts.items())
    verb = "would hand" if job_id is None else f"transfer {job_id} hands"
    console.print(f"{plan.mode.value}: {verb} {what} from {from_userid} to {to_userid}")
    for customer in plan.customers:
        console.print(f"  customer {customer.external_userid} {customer.name or ''}")
    for group in plan.groups:
        console.print(f"  group {group.chat_id} {group.name or ''}")
    for task in plan.tasks:
        console.print(f"  task {task.id} {task.title}")
    if job_id is not None:
        console.print(
            "the server's transfer poller makes the platform calls; follow it with"
            " `scrm staff transfers`"
        )


@staff.command("transfers")
@click.option("--limit", default=20, show_default=True, help="How many jobs, newest first.")
@click.pass_context
def transfers(ctx: click.Context, limit: int) -> None:
    """Transfer jobs, with every customer or group that is not transferred (yet)."""
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from store.models import TransferItem, TransferItemState, TransferJob

    async def fetch() -> list[tuple[TransferJob, list[TransferItem]]]:
        async with open_sessions(config_of(ctx)) as sessions, sessions() as session:
            jobs = list(
                await session.scalars(
                    select(TransferJob).order_by(TransferJob.id.desc()).limit(limit)
                )
            )
            found = []
            for job in jobs:
                items = await session.scalars(
                    select(TransferItem)
                    .where(
                        TransferItem.job_id == job.id,
                        TransferItem.state != TransferItemState.TRANSFERRED,
                    )
                    .order_by(TransferItem.id)
                )
                found.append((job, list(items)))
            return found

    table = Table("job", "mode", "from", "to", "state", "open or failed", "created")
    for job, items in run(fetch()):
        detail = "\n".join(
            f"{i.kind.value} {i.subject}: {i.state.value}" + (f" ({i.reason})" if i.reason else "")
            for i in items
        )
        table.add_row(
            str(job.id),
            job.mode.value,
            job.handover_userid,
            job.takeover_userid,
            job.state.value + (f" {job.counts}" if job.counts else ""),
            detail or "-",
            f"{job.created_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)


@click.group()
def report() -> None:
    """Reports."""


def _day(value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; write 2026-11-01") from None


@report.command("staff")
@click.option("--from", "start", help="First day (YYYY-MM-DD, UTC); default 7 days ago.")
@click.option("--to", "end", help="Day after the last (YYYY-MM-DD, UTC); default tomorrow.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write a CSV.")
@click.pass_context
def staff_report(
    ctx: click.Context, start: str | None, end: str | None, csv_path: str | None
) -> None:
    """First-response times, tasks on time, nudges ignored, customers added and lost."""
    from rich.console import Console
    from rich.table import Table

    from sop.staff.report import COLUMNS, StaffReport, staff_report

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = _day(start, today - timedelta(days=6))
    last = _day(end, today + timedelta(days=1))

    async def fetch() -> StaffReport:
        async with open_sessions(config_of(ctx)) as sessions, sessions() as session:
            return await staff_report(session, first, last)

    try:
        result = run(fetch())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(*COLUMNS, title=f"staff {first:%Y-%m-%d} to {last:%Y-%m-%d}")
    for row in result.rows():
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in COLUMNS))
    Console().print(table)
    if csv_path:
        with open(csv_path, "w", encoding="utf-8", newline="") as out:
            result.write_csv(out)
        Console().print(f"wrote {csv_path}")
