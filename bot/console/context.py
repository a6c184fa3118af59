"""What every command needs: the configuration, an event loop, a database connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.config import Config

T = TypeVar("T")


@dataclass
class CliState:
    config_path: str | None

    def config(self) -> Config:
        from bot.config import ConfigError, load_config

        try:
            return load_config(self.config_path)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None


def config_of(ctx: click.Context) -> Config:
    state = ctx.find_object(CliState)
    assert state is not None, "the scrm group sets CliState"
    return state.config()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is installed, else on the stock loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.run(coro)
    return uvloop.run(coro)


@asynccontextmanager
async def open_sessions(config: Config) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the configured database, which must already be migrated."""
    from store.db import create_engine, session_factory
    from store.migrate import current_revision, head_revision

    engine = create_engine(config.database_url)
    try:
        revision = await current_revision(engine)
        if revision != head_revision():
            raise click.ClickException(
                f"the database is at revision {revision or 'none'}, not {head_revision()}: "
                "run `scrm db upgrade` first"
            )
        yield session_factory(engine)
    finally:
        await engine.dispose()
