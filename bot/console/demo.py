"""``scrm demo``."""

from __future__ import annotations

import click

from bot.console.context import config_of, run


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the server on SQLite with the fake WeCom API and play a customer journey.

    Needs no WeCom account. Writes var/demo.db (replaced on every run); afterwards
    `scrm --config config.yaml customers` style commands work on it with
    SCRM_DATABASE_URL=sqlite:///var/demo.db.
    """
    from rich.console import Console

    from bot.demo import run_demo

    console = Console()
    try:
        result = run(run_demo(config_of(ctx), console))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if result.refused or result.inbox.get("failed") or result.inbox.get("pending"):
        raise click.ClickException(f"the demo did not go through cleanly: {result}")
    console.print("[bold green]demo finished:[/] every callback accepted and processed")
