"""``scrm customers`` and ``scrm timeline``: what the bot has learned about customers."""

from __future__ import annotations

import click

from bot.console.context import config_of, open_sessions, run


@click.command()
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def customers(ctx: click.Context, limit: int) -> None:
    """List customers, most recently active first, with their staff and tags."""
    from rich.console import Console

    from bot.console.views import CustomerRow, customers_table, load_customer_rows

    async def fetch() -> list[CustomerRow]:
        async with open_sessions(config_of(ctx)) as sessions:
            return await load_customer_rows(sessions, limit)

    Console().print(customers_table(run(fetch())))


@click.command()
@click.argument("customer")
@click.option("--limit", default=100, show_default=True)
@click.pass_context
def timeline(ctx: click.Context, customer: str, limit: int) -> None:
    """Show a customer's timeline; CUSTOMER is an id or an external_userid."""
    from rich.console import Console

    from bot.console.views import load_timeline, timeline_table
    from store.models import Customer, Interaction

    async def fetch() -> tuple[Customer, list[Interaction]] | None:
        async with open_sessions(config_of(ctx)) as sessions:
            return await load_timeline(sessions, customer, limit)

    found = run(fetch())
    if found is None:
        raise click.ClickException(f"no customer {customer!r}")
    Console().print(timeline_table(*found))
