"""What ``scrm playbook preview`` prints: the simulated run as a timeline, then what it
would have sent and which tasks it would have created."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config
from bot.console.context import open_sessions, run
from sop.engine.preview import PreviewResult, run_preview
from sop.engine.preview_seed import copy_customer, sample_customer
from sop.playbooks.durations import parse_duration, parse_local_datetime
from sop.playbooks.loader import load_playbooks
from sop.playbooks.model import Playbook
from sop.rendering import Renderer


def _detail(detail: dict[str, object]) -> str:
    for key in ("text", "script", "reason", "branch", "goto"):
        if detail.get(key):
            return f"{key}: {detail[key]}"
    return ", ".join(f"{k}={v}" for k, v in detail.items())


def render_result(result: PreviewResult, zone: ZoneInfo, console: Console) -> None:
    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%a %m-%d %H:%M")

    console.rule(f"[bold]preview[/] {result.playbook}, from {local(result.start)} ({zone.key})")
    if not result.enrolled:
        console.print(f"[yellow]not enrolled[/]: {result.skip}")
        return
    steps = Table("when", "step", "action", "outcome", "what", title="Steps", expand=True)
    for line in result.lines:
        steps.add_row(
            local(line.at), line.step_id, line.action, line.outcome, _detail(line.detail)
        )
    console.print(steps)
    if result.messages:
        sent = Table("when", "channel", "to", "message", title="Would send")
        for message in result.messages:
            sent.add_row(
                local(message.due_at), message.channel, message.recipient, message.summary
            )
        console.print(sent)
    if result.tasks:
        tasks = Table("created", "due", "staff", "task", "script", title="Staff tasks")
        for task in result.tasks:
            tasks.add_row(
                local(task.created_at),
                local(task.due_at),
                task.staff_userid,
                task.title,
                task.script,
            )
        console.print(tasks)
    reason = f" ({result.end_reason})" if result.end_reason else ""
    console.print(f"enrollment: [bold]{result.state}[/]{reason}")


def _playbook(config: Config, name: str, renderer: Renderer) -> Playbook:
    loaded = load_playbooks(config.sop.playbooks, renderer=renderer)
    if name in loaded.playbooks:
        return loaded.playbooks[name]
    problems = "".join(f"\n  {error}" for error in loaded.errors)
    known = ", ".join(sorted(loaded.playbooks)) or "none"
    raise click.ClickException(f"no valid playbook named {name!r} (playbooks: {known}){problems}")


async def _preview(  # noqa: PLR0913
    config: Config,
    playbook: Playbook,
    renderer: Renderer,
    *,
    customer_ref: str | None,
    days: int,
    replies: Sequence[str],
    start: datetime,
) -> PreviewResult:
    async def seed(target: AsyncSession) -> int:
        if customer_ref is None:
            return await sample_customer(target, playbook, now=start)
        async with open_sessions(config) as sessions, sessions() as source:
            return await copy_customer(source, target, customer_ref)

    return await run_preview(
        playbook,
        seed=seed,
        renderer=renderer,
        settings=config.sop,
        zone_default=config.timezone,
        start=start,
        days=days,
        replies=[parse_duration(r) for r in replies],
    )


def run_preview_command(  # noqa: PLR0913
    config: Config,
    name: str,
    *,
    customer_ref: str | None,
    days: int,
    replies: Sequence[str],
    start: str | None,
) -> None:
    renderer = Renderer(config.sop.templates)
    playbook = _playbook(config, name, renderer)
    zone = playbook.zone(config.timezone)
    try:
        begin = parse_local_datetime(start).replace(tzinfo=zone) if start else datetime.now(zone)
        for reply in replies:
            parse_duration(reply)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        result = run(
            _preview(
                config,
                playbook,
                renderer,
                customer_ref=customer_ref,
                days=days,
                replies=replies,
                start=begin,
            )
        )
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    render_result(result, zone, Console(width=160))
