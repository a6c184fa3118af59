"""``scrm demo``."""

from __future__ import annotations

import click

from bot.console.context import config_of, run


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the server on SQLite with the fake WeCom and WeChat APIs and the example playbooks,
    and play a two-day customer story with time running fast.

    Needs no WeCom account. Writes var/demo.db (replaced on every run); afterwards
    `scrm --config config.yaml customers` style commands work on it with
    SCRM_DATABASE_URL=sqlite:///var/demo.db.
    """
    from rich.console import Console

    from bot.demo import run_demo

    console = Console(width=None if Console().is_terminal else 150)
    try:
        result = run(run_demo(config_of(ctx), console))
    except (ValueError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
    if result.refused or result.inbox.get("failed") or result.inbox.get("pending"):
        raise click.ClickException(f"the demo did not go through cleanly: {result}")
    if result.problems:
        raise click.ClickException(
            "the demo story did not play out: " + "; ".join(result.problems)
        )
    console.print(
        "[bold green]demo finished:[/] every callback accepted and processed, every playbook"
        " step of the story ran"
    )
