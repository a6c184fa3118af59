"""``scrm db``: schema migrations."""

from __future__ import annotations

import click

from bot.console.context import config_of, run


async def upgrade_database(url: str) -> str | None:
    from store.db import create_engine
    from store.migrate import current_revision, upgrade

    engine = create_engine(url)
    try:
        await upgrade(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration (SQLite is also upgraded by `scrm serve` itself)."""
    config = config_of(ctx)
    revision = run(upgrade_database(config.database_url))
    click.echo(f"database at revision {revision}")
