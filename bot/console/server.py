"""``scrm serve``."""

from __future__ import annotations

import click

from bot.console.context import config_of, run
from bot.logs import LOG_FORMATS, LOG_LEVELS, LogFormat

#: bot.roles.Role's values (that module imports the database layer: too heavy for --help).
ROLES = ("all", "web", "worker")


@click.command()
@click.option("--host", help="Address to listen on (default: server.host).")
@click.option("--port", type=int, help="Port to listen on (default: server.port).")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="all",
    show_default=True,
    help="web: callback endpoints only; worker: processing, playbooks, sending and the"
    " other background work only; all: both. Any number of each may share one PostgreSQL"
    " database.",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="text lines, or one JSON object per line (time, level, logger, message, exception).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
    help="debug also shows the scheduler's and the HTTP access log's routine lines.",
)
@click.pass_context
def serve(  # noqa: PLR0913, PLR0917 - one parameter per option
    ctx: click.Context,
    host: str | None,
    port: int | None,
    role: str,
    log_format: str,
    log_level: str,
) -> None:
    """Accept callbacks, process them, run playbooks and campaigns, send; /healthz, /readyz."""
    from bot.roles import Role
    from bot.serve import serve_forever
    from bot.server import StartupError

    config = config_of(ctx)
    fmt: LogFormat = "json" if log_format == "json" else "text"
    try:
        run(
            serve_forever(
                config,
                host=host,
                port=port,
                role=Role(role),
                log_format=fmt,
                log_level=log_level,
            )
        )
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
