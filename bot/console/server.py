"""``scrm serve``."""

from __future__ import annotations

import click

from bot.console.context import config_of, run


@click.command()
@click.option("--host", help="Address to listen on (default: server.host).")
@click.option("--port", type=int, help="Port to listen on (default: server.port).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Accept callbacks, process them, keep customers and groups current."""
    from bot.server import StartupError, serve_forever

    config = config_of(ctx)
    try:
        run(serve_forever(config, host=host, port=port))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
