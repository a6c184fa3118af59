"""``scrm campaign``: plan, start, pause, resume, cancel and watch broadcast campaigns.

``plan`` writes nothing and exits non-zero with the reason when the campaign would be refused
(empty audience, a body over a platform limit); ``start`` refuses the same, then creates a run
and fans it out (or finishes the fan-out of a run a crash interrupted); the sender sends the
rows as they fall due.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from bot.console.context import config_of, open_sessions, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.config import Config
    from sop.campaigns.model import Campaign
    from sop.campaigns.plan import Plan


def _campaign(ctx: click.Context, name: str, folder: str) -> tuple[Config, Campaign]:
    from sop.campaigns.loader import load_campaigns

    config = config_of(ctx)
    result = load_campaigns([folder], templates=config.sop.templates)
    for error in result.errors:
        click.echo(str(error), err=True)
    found = result.campaigns.get(name)
    if found is None:
        known = ", ".join(sorted(result.campaigns)) or "none"
        raise click.ClickException(f"no valid campaign {name!r} in {folder} (campaigns: {known})")
    return config, found


class _Refused(Exception):
    """What ``plan`` would refuse, found by ``start`` before it creates a run."""

    def __init__(self, refusals: list[str]) -> None:
        super().__init__("; ".join(refusals))
        self.refusals = refusals


FOLDER = click.option("--campaigns", "folder", default="campaigns", show_default=True)


@click.group()
def campaign() -> None:
    """Broadcast campaigns (群发): plan, start, pause, resume, cancel, status, report."""


async def _make_plan(
    sessions: async_sessionmaker[AsyncSession], config: Config, definition: Campaign
) -> Plan:
    from sop.campaigns.plan import make_plan
    from sop.clock import SystemClock
    from sop.rendering.renderer import Renderer

    async with sessions() as session:
        return await make_plan(
            session,
            definition,
            renderer=Renderer(config.sop.templates),
            settings=config.sop,
            zone_default=config.timezone,
            now=SystemClock().now(),
        )


def _refuse(ctx: click.Context, refusals: list[str]) -> None:
    """Exit 1 with every refusal, if there is any."""
    for refusal in refusals:
        click.echo(f"refused: {refusal}", err=True)
    if refusals:
        ctx.exit(1)


@campaign.command("plan")
@click.argument("name")
@FOLDER
@click.pass_context
def plan(ctx: click.Context, name: str, folder: str) -> None:
    """Audience per owner and channel, exclusions, sample renders; writes nothing."""
    from rich.console import Console
    from rich.table import Table

    config, definition = _campaign(ctx, name, folder)

    async def compute() -> Plan:
        async with open_sessions(config) as sessions:
            return await _make_plan(sessions, config, definition)

    result = run(compute())
    console = Console()
    console.print(f"[bold]{name}[/]: {result.audience} — {result.matched} matched")
    owners = Table("owner", "channel", "recipients")
    for (owner, channel), count in sorted(result.by_owner.items()):
        owners.add_row(owner, channel, str(count))
    console.print(owners)
    excluded = Table("excluded because", "count")
    for reason, count in sorted(result.excluded.items()):
        excluded.add_row(reason, str(count))
    console.print(excluded)
    for variant, count in sorted(result.variants.items()):
        console.print(f"variant {variant}: {count}")
    for sample in result.samples:
        console.print(f"[dim]sample {sample.variant} ({sample.recipient}, {sample.owner}):[/]")
        console.print(sample.text)
    _refuse(ctx, result.refusals)


@campaign.command("start")
@click.argument("name")
@FOLDER
@click.pass_context
def start(ctx: click.Context, name: str, folder: str) -> None:
    """Create a run and fan it out (or finish a fan-out a crash interrupted); a campaign
    that ``plan`` refuses is refused here too, before any run exists."""
    from sop.campaigns import control
    from sop.campaigns.fanout import Fanout
    from sop.clock import SystemClock
    from sop.rendering.renderer import Renderer
    from store.models import RunState

    config, definition = _campaign(ctx, name, folder)
    clock = SystemClock()

    async def go() -> tuple[int, int, dict[str, object]]:
        async with open_sessions(config) as sessions:
            async with sessions() as session:
                last = await control.latest_run(session, name)
            if last is None or last.state is not RunState.RUNNING or last.fanned_out_at:
                try:
                    control.refuse_while_active(name, last)
                except control.CampaignStateError as exc:
                    raise click.ClickException(str(exc)) from None
                refusals = (await _make_plan(sessions, config, definition)).refusals
                if refusals:
                    raise _Refused(refusals)
            async with sessions.begin() as session:
                last = await control.latest_run(session, name)
                if last is not None and last.state is RunState.RUNNING and not last.fanned_out_at:
                    run_id = last.id
                else:
                    try:
                        new = await control.create_run(
                            session, definition, now=clock.now(), zone_default=config.timezone
                        )
                    except control.CampaignStateError as exc:
                        raise click.ClickException(str(exc)) from None
                    run_id = new.id
            fanout = Fanout(
                sessions, Renderer(config.sop.templates), config.sop, clock, config.timezone
            )
            batches = await fanout.run(run_id)
            async with sessions() as session:
                from store.models import CampaignRun

                done = await session.get(CampaignRun, run_id)
                assert done is not None
                return done.number, batches, dict(done.counts)

    try:
        number, batches, counts = run(go())
    except _Refused as refused:
        _refuse(ctx, refused.refusals)
        return
    click.echo(
        f"{name} run {number}: {batches} batch(es), {counts.get('included', 0)} recipients,"
        f" excluded {counts.get('excluded') or {}}"
    )


def _control(verb: str, help_text: str) -> click.Command:
    @click.command(verb, help=help_text)
    @click.argument("name")
    @click.pass_context
    def command(ctx: click.Context, name: str) -> None:
        from zoneinfo import ZoneInfo

        from sop.campaigns import control
        from sop.clock import SystemClock

        config = config_of(ctx)
        now = SystemClock().now()

        async def go() -> str:
            async with open_sessions(config) as sessions, sessions.begin() as session:
                try:
                    if verb == "pause":
                        done, count = await control.pause(session, name, now=now)
                        return f"run {done.number} paused: {count} pending rows held"
                    if verb == "resume":
                        zone = ZoneInfo(config.timezone)
                        done, count = await control.resume(session, name, now=now, zone=zone)
                        return f"run {done.number} resumed: {count} rows spread again"
                    gone = await control.cancel(session, name, now=now)
                    return (
                        f"run {gone.run.number} cancelled: {gone.rows} pending rows cancelled,"
                        f" {gone.withdrawals} accepted mass messages to withdraw"
                        " (cancel_groupmsg_send)"
                    )
                except control.CampaignStateError as exc:
                    raise click.ClickException(str(exc)) from None

        click.echo(run(go()))

    return command


campaign.add_command(_control("pause", "Hold the pending sends of the latest run."))
campaign.add_command(_control("resume", "Spread held sends again from now; continue fan-out."))
campaign.add_command(
    _control("cancel", "Cancel the latest run's pending sends; withdraw unsent mass messages.")
)


@campaign.command("status")
@click.argument("name")
@click.pass_context
def status(ctx: click.Context, name: str) -> None:
    """The latest run: state, fan-out and sending progress, rows by state."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from sop.campaigns import control
    from sop.clock import SystemClock

    config = config_of(ctx)

    async def go() -> control.Progress | None:
        async with open_sessions(config) as sessions, sessions.begin() as session:
            return await control.progress(session, name, now=SystemClock().now())

    found = run(go())
    if found is None:
        raise click.ClickException(f"campaign {name!r} has no run: start it first")
    console = Console()
    done = found.run
    console.print(f"[bold]{name}[/] run {done.number}: {done.state.value}")
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
    )
    with bars:
        total = max(found.total_rows, 1)
        bars.add_task("sent/settled", total=total, completed=found.settled_rows)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(found.rows.items())) or "no rows")
    excluded = done.counts.get("excluded") or {}
    console.print(f"recipients: {done.counts.get('included', 0)}, excluded: {excluded}")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@campaign.command("report")
@click.argument("name")
@click.option("--run", "number", type=int, default=None, help="Run number (default: latest).")
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write one line per recipient to this file.",
)
@click.pass_context
def report(ctx: click.Context, name: str, number: int | None, csv_file: str | None) -> None:
    """Collect the results of a run, then show them per variant (and write the CSV)."""
    import csv

    from rich.console import Console
    from rich.table import Table

    from sop.campaigns.report import (
        CSV_COLUMNS,
        RunReport,
        find_run,
        recipient_lines,
        run_report,
    )
    from sop.campaigns.results import collect
    from sop.clock import SystemClock

    config = config_of(ctx)

    async def go() -> RunReport:
        async with open_sessions(config) as sessions:
            async with sessions.begin() as session:
                try:
                    found = await find_run(session, name, number)
                except LookupError as exc:
                    raise click.ClickException(str(exc)) from None
                await collect(session, found.id, now=SystemClock().now())
            async with sessions() as session:
                result = await run_report(session, found)
                if csv_file is not None:
                    with open(csv_file, "w", newline="", encoding="utf-8") as handle:  # noqa: ASYNC230
                        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
                        writer.writeheader()
                        async for line in recipient_lines(session, found.id):
                            writer.writerow(line)
                return result

    result = run(go())
    done = result.run
    console = Console()
    console.print(f"[bold]{name}[/] run {done.number}: {done.state.value}, {done.channel}")
    table = Table(
        "variant",
        "recipients",
        "excluded",
        "sent",
        "reached",
        "replied",
        "converted",
        "reach %",
        "reply %",
        "conversion %",
        "outcomes",
    )
    for variant in [*result.variants.values(), result.total]:
        excluded = ", ".join(f"{k} {v}" for k, v in sorted(variant.excluded.items()))
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(variant.outcomes.items()))
        table.add_row(
            variant.variant,
            str(variant.recipients),
            excluded or "0",
            str(variant.sent),
            str(variant.reached),
            str(variant.replied),
            str(variant.converted),
            _rate(variant.reach_rate),
            _rate(variant.reply_rate),
            _rate(variant.conversion_rate),
            outcomes or "-",
        )
    console.print(table)
    if csv_file is not None:
        click.echo(f"recipients written to {csv_file}")
