"""``scrm inbox``: look at accepted callbacks and re-run the ones that failed."""

from __future__ import annotations

import json

import click

from bot.console.context import config_of, open_sessions, run


@click.group()
def inbox() -> None:
    """Accepted callbacks: list, show, retry."""


@inbox.command("ls")
@click.option(
    "--state", type=click.Choice(["pending", "done", "failed"]), help="Only rows in this state."
)
@click.option("--limit", default=50, show_default=True, help="How many rows, newest first.")
@click.pass_context
def inbox_ls(ctx: click.Context, state: str | None, limit: int) -> None:
    """List inbox rows, newest first."""
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import func, select

    from store.models import InboxRow, InboxState

    async def fetch() -> tuple[list[InboxRow], dict[str, int]]:
        async with open_sessions(config_of(ctx)) as sessions, sessions() as session:
            query = select(InboxRow).order_by(InboxRow.id.desc()).limit(limit)
            if state:
                query = query.where(InboxRow.state == InboxState(state))
            rows = list((await session.scalars(query)).all())
            counts = await session.execute(
                select(InboxRow.state, func.count()).group_by(InboxRow.state)
            )
            return rows, {str(s): n for s, n in counts.all()}

    rows, counts = run(fetch())
    table = Table("id", "source", "received", "state", "attempts", "error")
    for row in rows:
        table.add_row(
            str(row.id),
            row.source,
            f"{row.received_at:%Y-%m-%d %H:%M:%S}Z",
            str(row.state),
            str(row.attempts),
            (row.error or "")[:80],
        )
    console = Console()
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "inbox is empty")


@inbox.command("show")
@click.argument("row_id", type=int)
@click.pass_context
def inbox_show(ctx: click.Context, row_id: int) -> None:
    """Show one row: its payload as received and its error, if any."""
    from store.models import InboxRow

    async def fetch() -> InboxRow | None:
        async with open_sessions(config_of(ctx)) as sessions, sessions() as session:
            return await session.get(InboxRow, row_id)

    row = run(fetch())
    if row is None:
        raise click.ClickException(f"no inbox row {row_id}")
    click.echo(f"id:        {row.id}\nsource:    {row.source}\ndedupe:    {row.dedupe_key}")
    click.echo(f"received:  {row.received_at.isoformat()}\nstate:     {row.state}")
    click.echo(f"attempts:  {row.attempts}")
    if row.error:
        click.echo(f"error:     {row.error}")
    payload = row.payload
    if row.content_type == "json":
        payload = json.dumps(json.loads(payload), ensure_ascii=False, indent=2)
    click.echo(f"payload:\n{payload}")


@inbox.command("retry")
@click.argument("row_ids", type=int, nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every failed row.")
@click.pass_context
def inbox_retry(ctx: click.Context, row_ids: tuple[int, ...], retry_all: bool) -> None:
    """Put failed rows back in the queue; a running server processes them again."""
    from bot.processing.processor import retry_failed

    if not row_ids and not retry_all:
        raise click.UsageError("name the rows to retry, or pass --all")

    async def go() -> int:
        async with open_sessions(config_of(ctx)) as sessions:
            return await retry_failed(sessions, None if retry_all else list(row_ids))

    count = run(go())
    click.echo(f"{count} row(s) queued again")
